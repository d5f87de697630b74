"""PID 1's setup path splits each command line once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from init import cmdsetup
from mosnet.config import console, kcmdline

KERNEL = b'quiet mosip4=10.0.0.5,10.0.0.1,24 root=/dev/vda "rootflags=a b" -- single'
BAKED = "mosfirewall=ssh rw -- emergency\n"


@pytest.mark.parametrize("baked", [None, BAKED])
def test_each_line_is_split_once(
    baked: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path init.boot._setup runs: read, decide the echo, configure, describe."""
    split: list[bytes] = []
    real = kcmdline._arguments

    def counting(b: bytes) -> list[kcmdline.Arg]:
        split.append(b)
        return real(b)

    monkeypatch.setattr(kcmdline, "_arguments", counting)
    (tmp_path / "cmdline").write_bytes(KERNEL)
    if baked is not None:
        (tmp_path / "baked").write_text(baked)
    logger = logging.getLogger("test.cmdsetup")
    kernel, problem = cmdsetup.read_kernel_line(str(tmp_path / "cmdline"))
    assert problem is None
    assert not console.kernel_echoes_info(kernel.line)
    inp = cmdsetup.configure(kernel, logger, str(tmp_path / "baked"))
    cmdsetup.describe(inp)
    assert sorted(split) == sorted([KERNEL, *([baked.strip().encode()] if baked else [])])
    assert inp.boot.rootflags == "a b" and inp.net.mode == "static"
    assert inp.boot.init_args == ("single",)
    assert inp.merged.baked_args_replaced is (baked is not None)
