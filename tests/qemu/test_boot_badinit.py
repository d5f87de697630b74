"""A root whose /sbin/init names a missing interpreter still boots, under QEMU.

The root (``qemu/mkroot.sh OUT badinit``) has ``/sbin/init`` starting with
``#!/nonexistent/sh`` and the usual test init as ``/etc/init``. Before the
interpreter check, /sbin/init passed (a regular executable file), the
initramfs was wiped, execve failed with ENOENT and the machine halted
(tests/unit/test_initcheck.py::test_old_check_accepted_what_the_new_one_refuses
shows the old check passing this file; booted with the old image, this
test fails on "reboot: System halted"). ``panic=1`` after vm.py's
``panic=-1`` wins: a kernel panic would reboot, and ``-no-reboot`` ends QEMU.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from qemu.vm import OUT, TOP, Vm, VmSpec
from tests.qemu.conftest import BOOT_TIMEOUT


@pytest.fixture(scope="module")
def badinit_root() -> Path:
    """out/testroot-badinit.img, rebuilt when its inputs are newer."""
    root = OUT / "testroot-badinit.img"
    inputs = [TOP / "qemu" / "mkroot.sh", *(TOP / "qemu" / "root").iterdir()]
    if not root.exists() or root.stat().st_mtime < max(p.stat().st_mtime for p in inputs):
        subprocess.run([str(TOP / "qemu" / "mkroot.sh"), str(root), "badinit"], check=True)
    return root


def test_init_with_missing_interpreter_is_refused_and_the_next_init_boots(
    images: dict[str, Path], badinit_root: Path, tmp_path: Path
) -> None:
    spec = VmSpec(
        kernel=images["kernel"], initrd=images["initrd"], disk=badinit_root,
        append="rdinit=/mosnet-init root=/dev/vda rw panic=1", net="user",
    )  # fmt: skip
    with Vm(spec, tmp_path / "console.log") as vm:
        # A halt or panic (the old behaviour with this root) fails at once.
        end = vm.wait_for(r"^ROOT: done|reboot: System halted|Kernel panic", BOOT_TIMEOUT)
        assert end.group(0) == "ROOT: done", vm.text()[-3000:]
        vm.wait_exit(30)
        console = vm.text()
    assert "mosnet: mosnet-init starting as pid 1" in console
    # One line for the refusal, with the reason, before anything was removed.
    refusal = re.search(r"switch_root: refused '/sbin/init': .*$", console, re.M)
    assert refusal, "no refusal of /sbin/init logged"
    assert "its #! interpreter: '/nonexistent/sh'" in refusal.group(0)
    assert "does not exist" in refusal.group(0)
    wiped = console.index("switch_root: removed")
    assert refusal.start() < wiped
    assert "switch_root: init '/etc/init': #! '/bin/sh'" in console
    # The next init runs as PID 1 and proves it (the test root's markers).
    assert "ROOT: real init running as pid 1" in console
    assert "ROOT: the init with the missing interpreter ran" not in console
    state = re.search(r"^ROOT: state\.json (\{.*\})\s*$", console, re.M)
    assert state, "no /run/mosnet/state.json in the real root"
    boot = json.loads(state.group(1))["boot"]
    assert (boot["result"], boot["init"]) == ("switch_root", "/etc/init")
    assert re.search(r"ROOT:\s+daemon pid \d+ cmdline '@mosnet-daemon", console)
    for bad in ("Kernel panic", "FATAL", "reboot: System halted"):
        assert bad not in console, bad
