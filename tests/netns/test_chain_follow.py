"""Chain mode, the daemon's side, against real mounts in a private pid+mount namespace.

The helper is PID 1 there and behaves like initramfs-tools' /init (fresh
tmpfs on /run, mount --move into the root, run-init's move and chroot);
the daemon's follower must end up in the real root with /run/mosnet there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("chain_helper.py")
TOP = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mode", ["live", "late"])
def test_daemon_follows_a_distro_init_into_the_real_root(tmp_path: Path, mode: str) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("needs root and unshare (util-linux)")
    proc = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount", "--mount-proc",
         sys.executable, str(HELPER), str(TOP), str(tmp_path), mode],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["follower_exit"] == 0, proc.stderr
    # The distro's fresh /run is what the real root has, with mosnet's directory bound in.
    assert out["initramfs_dir_in_run"] and out["run_mosnet_is_ours"]
    st = out["state"]
    assert st["boot"]["result"] == "chain"
    chain = st["chain"]
    assert chain["followed"] is True
    events = " | ".join(chain["events"])
    assert "followed PID 1 into the real root" in events
    if mode == "live":  # bound while the distro's /run was still in the initramfs
        assert "bound /run/mosnet into the distro's /run" in events
        assert events.index("bound /run/mosnet") < events.index("followed PID 1")
    assert "/run/mosnet in the real root is mosnet's" in events
