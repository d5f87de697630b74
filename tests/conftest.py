"""Tier markers come from the directory: tests/unit, tests/netns, tests/qemu."""

from __future__ import annotations

import pathlib

import pytest

_TIERS = ("unit", "netns", "qemu")

# Shared test helpers hold asserts and fixtures too: rewrite them like tests.
pytest.register_assert_rewrite("tests.unit.helpers", "tests.netns", "tests.mosprocs")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = pathlib.Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
