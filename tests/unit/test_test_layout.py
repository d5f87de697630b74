"""The test tiers share one rootdir without packages, so pytest's default
import mode needs every test module basename to be unique across tiers; a
clash only shows when all tiers are collected together (as CI does)."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_test_module_basenames_are_unique_across_tiers() -> None:
    names = Counter(p.name for p in TESTS.glob("*/test_*.py"))
    clashes = sorted(name for name, count in names.items() if count > 1)
    assert clashes == []
