#!/bin/bash
# The one test command: install what is missing, build (warm caches make a
# rebuild quick), lint, then all three tiers: unit, netns (root), qemu (TCG).
# usage: tests/run-all.sh [extra pytest args...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
./build.sh --test-deps --append
qemu/mkroot.sh out/testroot.img >/dev/null
echo "== lint"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
echo "== tests"
exec .venv/bin/pytest tests/unit tests/netns tests/qemu "$@"
