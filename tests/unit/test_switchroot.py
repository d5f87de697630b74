"""init.switchroot: refusals change nothing; a real switch keeps what it must.

The namespace tests run tests/unit/helpers/switchroot_helper.py under
unshare(1); they need root, which CI has.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from init import switchroot as sr
from init import wipe

HELPER = pathlib.Path(__file__).parent / "helpers" / "switchroot_helper.py"
REPO = pathlib.Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or not os.path.exists("/bin/busybox"),
    reason="needs root, unshare(1) and /bin/busybox",
)
ALL_CANARIES = {
    "canary-a",
    "lib/x/canary-b",
    "etc/initrd-release",
    "abs-link-into-newroot",
    "newroot/keep/canary",
    "newroot/keep/deep/canary2",
    "newroot/sbin/init",
    "mnt/foreign/canary",
    "stuck/immutable",
    "only-in-initramfs/init",
}


def run_scenario(scenario: str, work: pathlib.Path) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            str(HELPER),
            "outer",
            scenario,
            str(work),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


@needs_root
@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        ("not-pid1", "not PID 1"),
        ("root-not-tmpfs", "is not ramfs/tmpfs"),
        ("no-initrd-release", "/etc/initrd-release is missing"),
        ("newroot-not-mountpoint", "is not a mount point"),
        ("newroot-subdir", "is not a mount point"),
        ("newroot-bind-same-fs", "on the initramfs filesystem itself"),
        ("init-missing", "does not exist"),
        ("init-none-missing", "no runnable init"),
        ("init-not-exec", "is not executable"),
        ("init-dir", "is not a regular file"),
        ("init-escape-dotdot", "escapes the new root"),
        # Resolved naively on the host it would hit the initramfs copy.
        ("init-escape-abs", "'/newroot/only-in-initramfs' does not exist"),
    ],
)
def test_refusal_deletes_nothing(scenario: str, reason: str, tmp_path: pathlib.Path) -> None:
    res = run_scenario(scenario, tmp_path)
    assert "REFUSED:" in str(res["stdout"]) and reason in str(res["stdout"]), res
    assert "SWITCHED" not in str(res["stdout"])
    alive = res["alive"]
    assert isinstance(alive, dict)
    expected = ALL_CANARIES - ({"etc/initrd-release"} if scenario == "no-initrd-release" else set())
    assert {k for k, v in alive.items() if v} == expected


@needs_root
def test_real_switch_as_pid1(tmp_path: pathlib.Path) -> None:
    res = run_scenario("ok", tmp_path)
    out = str(res["stdout"]).split()
    # The exec'd init (busybox sh via /sbin/init -> /lib/systemd/systemd) is PID 1
    # and sees the moved API mounts, /run created on the writable new root.
    assert "SWITCHED" in out and "pid=1" in out, res
    for line in ("proc=ok", "sys=ok", "dev=ok", "pts=ok", "run=ok", "keep=ok"):
        assert line in out, (line, res)
    assert res["rc"] == 0
    alive = res["alive"]
    assert isinstance(alive, dict)
    for kept in (
        "newroot/keep/canary",
        "newroot/keep/deep/canary2",
        "newroot/sbin/init",
        "mnt/foreign/canary",
    ):
        assert alive[kept], (kept, res)
    for gone in (
        "canary-a",
        "lib/x/canary-b",
        "etc/initrd-release",
        "abs-link-into-newroot",
        "only-in-initramfs/init",
    ):
        assert not alive[gone], (gone, res)
    # An undeletable file is logged and the switch still completes.
    if res["immutable"]:
        assert alive["stuck/immutable"]
        assert "cannot remove /stuck/immutable" in str(res["stderr"])


@needs_root
def test_init_with_missing_interpreter_is_refused_and_the_next_runs(
    tmp_path: pathlib.Path,
) -> None:
    """/sbin/init is '#!/nonexistent/sh': refused before the wipe, /etc/init runs."""
    res = run_scenario("init-bad-interp", tmp_path)
    out, err = str(res["stdout"]), str(res["stderr"])
    assert "NEXT-INIT=/etc/init" in out and "SWITCHED pid=1" in out, res
    assert "switch_root: init= refused: '/sbin/init': its #! interpreter" in err, err
    assert "'/nonexistent/sh'" in err and "trying /etc/init, /bin/init, /bin/sh" in err
    assert "switch_root: init '/etc/init': #! '/bin/sh'" in err
    alive = res["alive"]
    assert isinstance(alive, dict) and not alive["canary-a"] and alive["newroot/sbin/init"]


@needs_root
def test_exec_failing_after_the_wipe_runs_the_next_init(tmp_path: pathlib.Path) -> None:
    res = run_scenario("exec-fails-next", tmp_path)
    out, err = str(res["stdout"]), str(res["stderr"])
    assert "switch_root: exec failed after the wipe: '/sbin/init'" in err, err
    # The hook (state.json in the boot) hears of it, then the script is PID 1.
    assert out.index("NEXT: /etc/init") < out.index("NEXT-INIT=/etc/init"), out
    assert "SWITCHED pid=1" in out and "keep=ok" in out
    alive = res["alive"]
    assert isinstance(alive, dict) and not alive["canary-a"]


@needs_root
def test_no_init_execs_after_the_wipe_the_root_shell_is_respawned(
    tmp_path: pathlib.Path,
) -> None:
    res = run_scenario("exec-fails-rescue", tmp_path)
    out, err = str(res["stdout"]), str(res["stderr"])
    assert "FAILED: no init of the new root would exec" in out, res
    assert "starting /bin/sh of the new root on the console" in err, err
    runs = str(res["rescue_log"]).splitlines()
    # Two runs, each a child of PID 1 (still us, never the shell itself).
    assert len(runs) >= 2 and all(r.endswith("ppid=1") for r in runs), runs
    assert "emergency shell exited; respawning" in err
    assert "NO-RESCUE" not in out


@needs_root
def test_nothing_runnable_after_the_wipe(tmp_path: pathlib.Path) -> None:
    res = run_scenario("exec-fails-nothing", tmp_path)
    out, err = str(res["stdout"]), str(res["stderr"])
    assert "FAILED: no init of the new root would exec" in out, res
    assert "no rescue shell: '/bin/sh'" in err and out.rstrip().endswith("NO-RESCUE"), res


# --- in-process tests: no privileges, nothing outside tmp_path is touched ---


def test_wipe_tree_keeps_symlink_targets(tmp_path: pathlib.Path) -> None:
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    (tree / "a" / "b").mkdir(parents=True)
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "canary").write_text("x")
    (outside / "canary").write_text("x")
    (tree / "a" / "b" / "f").write_text("x")
    (tree / "file").write_text("x")
    (tree / "dirlink").symlink_to(outside)
    (tree / "a" / "filelink").symlink_to(outside / "canary")
    (tree / "dangling").symlink_to("/nonexistent/x")
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        report = wipe.wipe_tree(fd, os.stat(tree).st_dev)
    finally:
        os.close(fd)
    assert os.listdir(tree) == []
    assert (outside / "sub" / "canary").exists() and (outside / "canary").exists()
    assert report.errors == () and report.skipped_mounts == ()
    assert (report.files, report.dirs) == (5, 2)


def test_wipe_tree_skips_other_devices(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Pretend the root is another device: every entry looks like a mount.
        report = wipe.wipe_tree(fd, os.stat(tmp_path).st_dev + 1, path="/x")
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path)) == ["d", "f"]
    assert sorted(report.skipped_mounts) == ["/x/d", "/x/f"]


def test_preflight_refuses_when_not_pid1(tmp_path: pathlib.Path) -> None:
    assert os.getpid() != 1
    with pytest.raises(sr.SwitchRootRefused, match="not PID 1"):
        sr.preflight(str(tmp_path), None)


def test_mountinfo_unescape(tmp_path: pathlib.Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "36 35 98:0 / /mnt/with\\040space rw - ext3 /dev/x rw\n37 35 98:0 / / rw - tmpfs none rw\n"
    )
    assert sr.mount_points(str(info)) == frozenset({"/mnt/with space", "/"})
    assert sr.mount_points(str(tmp_path / "missing")) is None
