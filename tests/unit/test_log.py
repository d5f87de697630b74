"""Logging decisions that matter on a console with no one watching."""

from __future__ import annotations

import logging

import pytest

from mosnet.base import log


def test_never_silent_without_kmsg_and_console(capfd: pytest.CaptureFixture[str]) -> None:
    log.setup(kmsg=False, console=None, stderr=False)
    log.get("t").info("still visible")
    assert "mosnet: still visible" in capfd.readouterr().err


def test_step_records_time_and_reraises() -> None:
    timings: dict[str, float] = {}
    logger = logging.getLogger("mosnet.test")
    with log.step(logger, "phase", timings):
        pass
    assert "phase" in timings and timings["phase"] >= 0
    with pytest.raises(ValueError), log.step(logger, "broken", timings):
        raise ValueError("boom")
    assert "broken" not in timings
