"""The OVS runtime copy under /run (mosnet.ovs.ovsrt): manifest, install, and a real run
through the copied loader (a host program stands in for the OVS daemons)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from initramfs import elf
from mosnet.ovs import ovsrt
from mosnet.ovs.ovsrt import OvsRuntimeError, Runtime, parse_manifest

GOOD = """# a comment
loader /lib64/ld-linux-x86-64.so.2
program /usr/sbin/ovsdb-server
program /usr/lib/openvswitch-switch/ovs-vswitchd
library /lib/x86_64-linux-gnu/libc.so.6
"""


def test_manifest_parses() -> None:
    m = parse_manifest(GOOD)
    assert m.loader == "/lib64/ld-linux-x86-64.so.2"
    assert m.programs == ("/usr/sbin/ovsdb-server", "/usr/lib/openvswitch-switch/ovs-vswitchd")
    assert m.libraries == ("/lib/x86_64-linux-gnu/libc.so.6",)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (GOOD + "binary /usr/bin/x\n", "line 6: bad entry 'binary /usr/bin/x'"),
        (GOOD + "library lib/relative.so\n", "line 6"),
        (GOOD + "library /a /b\n", "line 6"),
        (GOOD.replace("loader", "library"), "one loader"),
        (GOOD + "loader /lib/ld.so\n", "one loader"),
        ("loader /lib64/ld.so\n", "at least one program"),
        (GOOD + "binary /x\x1b[2J\n", "\\x1b[2J"),  # quoted, escaped
    ],
)
def test_a_bad_manifest_says_where_and_what(text: str, words: str) -> None:
    with pytest.raises(OvsRuntimeError) as err:
        parse_manifest(text)
    assert words in str(err.value)


def fake_files(tmp: Path) -> Path:
    """A manifest over plain files; a library reached through a symlink."""
    src = tmp / "src"
    src.mkdir()
    for name in ("ld-linux", "ovsdb-server", "ovs-vswitchd", "libfoo.so.1.2.3"):
        (src / name).write_bytes(name.encode())
    (src / "libfoo.so.1").symlink_to("libfoo.so.1.2.3")
    manifest = tmp / "manifest.txt"
    manifest.write_text(
        f"loader {src}/ld-linux\nprogram {src}/ovsdb-server\nprogram {src}/ovs-vswitchd\n"
        f"library {src}/libfoo.so.1\n"
    )
    return manifest


def test_install_copies_under_the_names_the_loader_wants(tmp_path: Path) -> None:
    root = tmp_path / "rt"
    rt = ovsrt.install(str(fake_files(tmp_path)), str(root))
    assert rt == Runtime(str(root)) and ovsrt.find(str(root)) == rt
    assert (root / "ld.so").read_bytes() == b"ld-linux"
    assert (root / "bin/ovs-vswitchd").read_bytes() == b"ovs-vswitchd"
    lib = root / "lib/libfoo.so.1"
    assert lib.read_bytes() == b"libfoo.so.1.2.3" and not lib.is_symlink()  # the content
    assert rt.has("ovs-vswitchd") and not rt.has("ovs-vsctl")
    assert rt.size() == sum(len(n) for n in ("ld-linux", "ovsdb-server", "ovs-vswitchd")) + 15
    assert not list(root.rglob("*.tmp"))


def test_a_failed_copy_leaves_no_runtime_to_find(tmp_path: Path) -> None:
    manifest = fake_files(tmp_path)
    (tmp_path / "src/libfoo.so.1.2.3").unlink()  # the link now dangles
    root = tmp_path / "rt"
    with pytest.raises(OvsRuntimeError, match="libfoo.so.1"):
        ovsrt.install(str(manifest), str(root))
    assert ovsrt.find(str(root)) is None  # the loader is copied last


def test_no_manifest_no_runtime(tmp_path: Path) -> None:
    assert ovsrt.install(str(tmp_path / "none.txt"), str(tmp_path / "rt")) is None
    assert not (tmp_path / "rt").exists()


def test_command_runs_the_copy_through_its_loader() -> None:
    exe, argv = Runtime("/run/x").command(["@ovs-vswitchd", "unix:/run/db.sock", "--detach"])
    assert exe == "/run/x/ld.so"
    assert argv == [
        "@ovs-vswitchd", "--argv0", "@ovs-vswitchd", "--library-path", "/run/x/lib",
        "--inhibit-cache", "/run/x/bin/ovs-vswitchd", "unix:/run/db.sock", "--detach",
    ]  # fmt: skip


def host_manifest(tmp: Path, program: str) -> Path:
    """A manifest for a host program, built like the add-on's (soname paths)."""
    closure = elf.resolve([Path(program)])
    info = elf.read_elf(Path(program))
    assert info is not None and info.interp is not None
    needed: set[str] = set()
    for f in closure.files:
        got = elf.read_elf(f.source)
        needed.update(got.needed if got else ())
    paths = {f.image_path for f in closure.files} | {x.image_path for x in closure.links}
    libs = {p.name: p for p in sorted(paths) if p.name in needed}
    text = f"loader {info.interp}\nprogram {program}\n"
    text += "".join(f"library {p}\n" for p in libs.values())
    (tmp / "manifest.txt").write_text(text)
    return tmp / "manifest.txt"


def test_a_real_program_runs_from_the_copy_under_its_at_name(tmp_path: Path) -> None:
    sleep = os.path.realpath("/bin/sleep")
    rt = ovsrt.install(str(host_manifest(tmp_path, sleep)), str(tmp_path / "rt"))
    assert rt is not None
    name = os.path.basename(sleep)
    exe, argv = rt.command([f"@{name}", "--bogus"])
    bad = subprocess.run(argv, executable=exe, capture_output=True, text=True, timeout=10)
    assert bad.returncode != 0 and bad.stderr.startswith(f"@{name}:"), bad.stderr  # its argv[0]
    exe, argv = rt.command([f"@{name}", "30"])
    proc = subprocess.Popen(argv, executable=exe)
    try:
        time.sleep(0.3)
        assert proc.poll() is None
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0] == f"@{name}".encode()  # what systemd's kill sweeps look at
        assert os.readlink(f"/proc/{proc.pid}/exe") == str(tmp_path / "rt/ld.so")
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert str(tmp_path / "rt/lib/libc.so.6") in maps  # not the host's libc
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
