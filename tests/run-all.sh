#!/bin/bash
# The one test command: install what is missing, build (warm caches make a
# rebuild quick), lint, then all three tiers: unit, netns (root), qemu (TCG).
# usage: tests/run-all.sh [extra pytest args, given to each tier...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
./build.sh --test-deps --append
# The boot tests run on Debian 13's kernel too (merged /usr, .ko.xz modules),
# fetched through apt lists kept under .cache/apt/trixie.
./build.sh --no-deps --no-ovs --kernel linux-image-amd64@trixie --out out/debian13
qemu/mkroot.sh out/testroot.img >/dev/null
echo "== lint"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
echo "== tests"
# One pytest per tier, so each prints its time; the QEMU tier runs two guests
# at a time (one TCG core each). Exit code 5 (nothing selected) is no failure.
status=0
for tier in unit netns qemu; do
    start=$SECONDS
    workers=()
    [ $tier != qemu ] || workers=(-n 2 --dist loadgroup)
    rc=0
    .venv/bin/pytest "tests/$tier" "${workers[@]}" "$@" || rc=$?
    [ $rc = 5 ] && rc=0
    [ $rc = 0 ] || status=$rc
    echo "== $tier tier: $((SECONDS - start)) s (exit $rc)"
done
exit $status
