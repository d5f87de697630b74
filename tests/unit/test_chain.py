"""Chain mode, PID 1's side (init/chain.py): the target checks and a real exec."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from init import chain
from init.chain import ChainRefused

TOP = Path(__file__).resolve().parents[2]


def script(path: Path, body: str, interp: str = "/bin/sh") -> Path:
    path.write_text(f"#!{interp}\n{body}")
    path.chmod(0o755)
    return path


def test_find_target_accepts_a_distro_init_script(tmp_path: Path) -> None:
    init = script(tmp_path / "init", "exit 0\n")
    target = chain.find_target(str(init), own=())
    assert (target.path, target.interpreter) == (str(init), "/bin/sh")


def test_find_target_refusals_name_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ChainRefused, match="No such file"):
        chain.find_target(str(tmp_path / "init"), own=())
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(ChainRefused, match="not an executable file"):
        chain.find_target(str(plain), own=())
    broken = script(tmp_path / "broken", "", interp="/nonexistent/sh")
    with pytest.raises(ChainRefused, match="/nonexistent/sh"):
        chain.find_target(str(broken), own=())
    # The default image's /init is a link to mosnet-init itself.
    ours = script(tmp_path / "mosnet-init", "")
    (tmp_path / "init").symlink_to("mosnet-init")
    with pytest.raises(ChainRefused, match="mosnet-init itself"):
        chain.find_target(str(tmp_path / "init"), own=(str(ours),))


def test_argv_and_env_as_the_kernel_gives_them_without_mosnet_parameters() -> None:
    argv = chain.init_argv(["/usr/lib/mosnet/mosnet-init.bin", "single", "mosshell", "x"])
    assert argv == ["/init", "single", "x"]
    env = chain.init_env(
        {"HOME": "/", "TERM": "linux", "BOOT_IMAGE": "/vmlinuz", "mosinit": "chain",
         "mosip4": "10.0.0.2,10.0.0.1,255.255.255.0", "ip": "dhcp", "BOOTIF": "01-52-54"}
    )  # fmt: skip
    assert env == {"HOME": "/", "TERM": "linux", "BOOT_IMAGE": "/vmlinuz", "BOOTIF": "01-52-54"}


CHILD = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from init import chain
leak = os.open(sys.argv[3], os.O_RDONLY | os.O_CREAT)
os.set_inheritable(leak, True)
signal.signal(signal.SIGPIPE, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
target = chain.find_target(sys.argv[2], own=())
env = chain.init_env({"HOME": "/", "TERM": "linux", "mosinit": "chain", "ip": "dhcp"})
chain.execute(target, chain.init_argv(["mosnet-init.bin", "quiet", "mosdebug"], target.path), env,
              before_exec=lambda: print("hook ran", flush=True))
"""

DUMP = """echo "argv: $0 $*"
env | sort | tr '\\n' ' '; echo
for f in /proc/$$/fd/*; do readlink "$f"; done | tr '\\n' ' '; echo
exec grep -E '^Sig(Ign|Blk)' /proc/self/status
"""


def test_execute_gives_the_distro_init_a_clean_process(tmp_path: Path) -> None:
    init = script(tmp_path / "init", DUMP)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(TOP), str(init), str(tmp_path / "leak")],
        capture_output=True, text=True, timeout=30, check=True, env={},
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    assert lines[0] == "hook ran"
    assert lines[1] == f"argv: {init} quiet"
    env = lines[2].split()
    assert "HOME=/" in env and "TERM=linux" in env
    assert not any(v.startswith(("mosinit=", "ip=")) for v in env), env
    assert str(tmp_path / "leak") not in lines[3].split(), lines[3]  # inherited fds are closed
    assert "SigIgn:\t0000000000000000" in lines and "SigBlk:\t0000000000000000" in lines, lines


def test_execute_failure_is_a_typed_error(tmp_path: Path) -> None:
    init = script(tmp_path / "init", "")
    target = chain.find_target(str(init), own=())
    init.unlink()
    pid = os.fork()
    if pid == 0:  # the child must not come back into pytest
        try:
            chain.execute(target, ["/init"], {})
        except chain.ChainFailed:
            os._exit(7)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7


def test_private_modules_loaded_up_front_except_br_netfilter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The distro's modprobe cannot find them when the kernel asks on demand."""
    from init.modindex import ModuleIndex
    from init.modules import Loader
    from tests.unit.test_modules import Kernel

    tree = tmp_path / "private" / "6.1.0-test"
    for rel in ("kernel/net/llc/llc.ko", "kernel/net/bridge/bridge.ko",
                "kernel/net/bridge/br_netfilter.ko"):  # fmt: skip
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(b"\x7fELF")
    (tree / "modules.dep").write_text(
        "kernel/net/llc/llc.ko:\nkernel/net/bridge/bridge.ko: kernel/net/llc/llc.ko\n"
        "kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko\n"
    )
    kernel = Kernel()
    loader = Loader(ModuleIndex.load_all([str(tree)]), finit=kernel, proc_modules="/nonexistent")
    chain.load_private_modules(loader, "6.1.0-test", str(tmp_path / "private"))
    assert kernel.order == ["llc", "bridge"]
    chain.load_private_modules(loader, "6.1.0-other", str(tmp_path / "private"))
    assert "no private modules for kernel 6.1.0-other (the image has: 6.1.0-test)" in caplog.text
    chain.load_private_modules(loader, "6.1.0-test", str(tmp_path / "absent"))
    assert kernel.order == ["llc", "bridge"]
