#!/bin/bash
# The one test command: install what is missing, build (warm caches make a
# rebuild quick), lint, then all three tiers: unit, netns (root), qemu (TCG).
# usage: tests/run-all.sh [extra pytest args...]
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
exec .venv/bin/pytest tests/unit tests/netns tests/qemu "$@"
