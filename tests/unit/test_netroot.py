"""mosroot=/NFS parameters, the RAM check, and fetch → verify → mount with its cleanup."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from init import bootcfg, netroot, nfsroot
from init.loopdev import LoopDevice
from init.modindex import ModuleIndex
from init.netroot import NetRootError, Seams
from init.netrootcfg import NetRoot, NfsRoot, make_netroot, parse_nfs, parse_url
from mosnet.base.errors import ParamError
from tests.unit.helpers.netroot_http import FakeServer, ok

SHA = "ab" * 32
MiB = 1 << 20


# ------------------------------------------------------------------ parameters


def test_mosroot_with_sha256_parses() -> None:
    line = f"mosroot=http://10.0.0.1:8000/r/root.squashfs mosroot_sha256={SHA.upper()} "
    cfg, errors = bootcfg.parse(line + "mosroot_fetch_timeout=90")
    assert errors == ()
    assert cfg.netroot is not None and cfg.netroot_error is None
    assert str(cfg.netroot.url) == "http://10.0.0.1:8000/r/root.squashfs"
    assert (cfg.netroot.sha256, cfg.netroot.format, cfg.netroot.fetch_timeout) == (
        SHA,
        "squashfs",
        90,
    )


@pytest.mark.parametrize(
    ("line", "param", "words"),
    [
        ("mosroot=http://h/root.squashfs", "mosroot_sha256", "64 hex"),
        ("mosroot=http://h/root.squashfs mosroot_sha256=abc", "mosroot_sha256", "64 hex"),
        (f"mosroot=http://h/root.squashfs mosroot_sha256={'g' * 64}", "mosroot_sha256", "64 hex"),
        (f"mosroot=https://h/root.squashfs mosroot_sha256={SHA}", "mosroot", "no TLS"),
        (f"mosroot=ftp://h/root.squashfs mosroot_sha256={SHA}", "mosroot", "http://"),
        (f"mosroot=http://h/root.img mosroot_sha256={SHA}", "mosroot", ".squashfs"),
        (f"mosroot=http://h:99999/root.sqfs mosroot_sha256={SHA}", "mosroot", "port"),
        (f"mosroot=http://u@h/root.sqfs mosroot_sha256={SHA}", "mosroot", "user@"),
        (f"mosroot=http://[zz::1]/root.sqfs mosroot_sha256={SHA}", "mosroot", "IPv6"),
        (f"mosroot=http:///root.sqfs mosroot_sha256={SHA}", "mosroot", "host"),
    ],
)
def test_bad_mosroot_is_refused_and_remembered(line: str, param: str, words: str) -> None:
    cfg, errors = bootcfg.parse(line)
    assert len(errors) == 1 and isinstance(errors[0], ParamError)
    assert errors[0].param == param and words in errors[0].expected
    # The refusal is kept: the boot must not quietly use some other root.
    assert cfg.netroot is None and cfg.netroot_error is not None and param in cfg.netroot_error


def test_fetch_timeout_must_be_seconds() -> None:
    cfg, errors = bootcfg.parse(
        f"mosroot=http://h/a.tar.zst mosroot_sha256={SHA} mosroot_fetch_timeout=x"
    )
    assert [e.param for e in errors] == ["mosroot_fetch_timeout"]
    assert cfg.netroot is not None and cfg.netroot.format == "tar.zst"


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("root=nfs:10.0.0.1:/srv/root", NfsRoot("10.0.0.1", "/srv/root")),
        (
            "root=nfs:10.0.0.1:/srv/root:vers=3,port=2049",
            NfsRoot("10.0.0.1", "/srv/root", ("vers=3", "port=2049")),
        ),
        ("root=nfs4:srv:/", NfsRoot("srv", "/", ("vers=4",))),
        ("root=nfs4:srv:/r:vers=4.1", NfsRoot("srv", "/r", ("vers=4.1",))),
        (
            "root=/dev/nfs nfsroot=10.0.0.1:/x,ro,vers=3",
            NfsRoot("10.0.0.1", "/x", ("ro", "vers=3")),
        ),
        ("nfsroot=10.0.0.1:/x root=/dev/nfs", NfsRoot("10.0.0.1", "/x")),
        ("root=nfs:[fd00::1]:/x", NfsRoot("fd00::1", "/x")),
    ],
)
def test_nfs_root_forms(line: str, want: NfsRoot) -> None:
    cfg, errors = bootcfg.parse(line)
    assert errors == () and cfg.nfs == want and cfg.root.kind == "nfs"


@pytest.mark.parametrize(
    "value", ["nfs:srv", "nfs::/x", "nfs:srv:x", "nfs:srv:/x:bad;opt", "nfs:[zz]:/x"]
)
def test_bad_nfs_root(value: str) -> None:
    cfg, errors = bootcfg.parse(f"root={value}")
    assert len(errors) == 1 and cfg.nfs is None


def test_nfs_option_sets_negotiate_versions() -> None:
    sets = nfsroot.option_sets(NfsRoot("s", "/x"), "10.0.0.1", "10.0.0.9")
    assert [",".join(s) for s in sets] == [
        "addr=10.0.0.1,vers=4.2,clientaddr=10.0.0.9",
        "addr=10.0.0.1,vers=4.1,clientaddr=10.0.0.9",
        "addr=10.0.0.1,vers=4.0,clientaddr=10.0.0.9",
        "addr=10.0.0.1,vers=3,nolock",
    ]
    given = nfsroot.option_sets(parse_nfs("s:/x:vers=3,lock,ro"), "10.0.0.1", None)
    assert given == [["vers=3", "lock", "addr=10.0.0.1"]]


def test_nfs_mount_tries_until_one_works() -> None:
    calls: list[str] = []

    def mount(src: str | None, target: str, fs: str | None, flags: int, data: str | None) -> None:
        calls.append(f"{src} {fs} {data}")
        if "vers=4.0" not in (data or ""):
            raise OSError(93, "Protocol not supported")

    used = nfsroot.mount_nfs(
        NfsRoot("127.0.0.1", "/x"), "/sysroot", True, mount=mount, load=lambda: None
    )
    assert used.startswith("addr=127.0.0.1,vers=4.0")
    assert len(calls) == 3 and calls[0].startswith("127.0.0.1:/x nfs ")
    with pytest.raises(nfsroot.NfsRootError, match="Protocol not supported"):
        nfsroot.mount_nfs(
            parse_nfs("127.0.0.1:/x:vers=3"), "/s", True, mount=mount, load=lambda: None
        )


def test_nfs_root_needs_the_client_from_the_add_on() -> None:
    with pytest.raises(nfsroot.NfsRootError, match="no NFS client module; boot with the netroot"):
        nfsroot.require_client(ModuleIndex("/lib/modules/x", paths={"loop": "/l/loop.ko"}))
    nfsroot.require_client(ModuleIndex("/m", paths={"nfs": "/m/nfs.ko"}))
    nfsroot.require_client(ModuleIndex("/m", builtin=frozenset({"nfs"})))


# -------------------------------------------------------------------- RAM check


def test_ram_budget() -> None:
    assert netroot.ram_budget(100 * MiB, "squashfs", 200 * MiB) == 100 * MiB
    with pytest.raises(NetRootError, match=r"image is 150 MiB.*needs 214 MiB.*has 200 MiB"):
        netroot.ram_budget(150 * MiB, "squashfs", 200 * MiB)
    with pytest.raises(NetRootError, match="tar.zst root needs"):
        netroot.ram_budget(60 * MiB, "tar.zst", 200 * MiB)
    assert netroot.ram_budget(None, "tar.zst", 364 * MiB) == 100 * MiB  # unknown length
    with pytest.raises(NetRootError, match="MemAvailable"):
        netroot.ram_budget(1, "squashfs", None)


def test_mem_available(tmp_path: Path) -> None:
    f = tmp_path / "meminfo"
    f.write_text("MemTotal:  1000 kB\nMemAvailable:     2048 kB\n")
    assert netroot.mem_available(str(f)) == 2048 * 1024
    f.write_text("MemTotal: 1 kB\n")
    assert netroot.mem_available(str(f)) is None


# ------------------------------------------------------- fetch, verify, mount


class Rig:
    """Seams that record mounts in a list; the stage is a real directory."""

    def __init__(self, tmp_path: Path, server: FakeServer, mem_mib: int = 512) -> None:
        self.mounts: list[str] = []
        self.extracted: list[str] = []
        meminfo = tmp_path / "meminfo"
        meminfo.write_text(f"MemAvailable: {mem_mib * 1024} kB\n")
        self.stage = tmp_path / "stage"
        self.root = tmp_path / "sysroot"
        self.root.mkdir()
        self.seams = Seams(
            connect=server, mount=self._mount, umount=self._umount, attach=self._attach,
            extract=self._extract, load_modules=lambda names: None, sleep=lambda s: None,
            meminfo=str(meminfo), executable=lambda path: True,
        )  # fmt: skip

    def _mount(
        self, src: str | None, target: str, fs: str | None, flags: int, data: str | None
    ) -> None:
        self.mounts.append(target)

    def _umount(self, target: str) -> None:
        self.mounts.remove(target)
        if target != str(self.root):  # the tmpfs content goes with it
            shutil.rmtree(target)
            os.mkdir(target)

    def _attach(self, path: str) -> LoopDevice:
        assert Path(path).read_bytes() == IMAGE
        return LoopDevice("/dev/loop3", os.open("/dev/null", os.O_RDONLY))

    def _extract(self, archive: str, target: str) -> None:
        self.extracted.append(Path(archive).read_bytes().decode())

    def spec(self, fmt: str = "squashfs", sha: str | None = None) -> NetRoot:
        name = "root.squashfs" if fmt == "squashfs" else "root.tar.zst"
        return make_netroot(
            f"http://10.0.0.1/{name}", sha or hashlib.sha256(IMAGE).hexdigest(), None
        )

    def run(self, spec: NetRoot) -> netroot.RootSource:
        return netroot.fetch_and_mount(
            spec, str(self.root), False, stage=str(self.stage), seams=self.seams
        )


IMAGE = b"squashfs image bytes " * 1000


def test_squashfs_root_is_verified_then_mounted_with_overlay(tmp_path: Path) -> None:
    rig = Rig(tmp_path, FakeServer(ok(IMAGE)))
    src = rig.run(rig.spec())
    st = rig.stage
    assert rig.mounts == [f"{st}/image", f"{st}/lower", f"{st}/rw", str(rig.root)]
    assert (src.size, src.format, src.url) == (
        len(IMAGE),
        "squashfs",
        "http://10.0.0.1/root.squashfs",
    )
    assert src.as_dict()["sha256"] == hashlib.sha256(IMAGE).hexdigest()


def test_tar_root_is_unpacked_and_the_archive_tmpfs_removed(tmp_path: Path) -> None:
    rig = Rig(tmp_path, FakeServer(ok(IMAGE)))
    rig.run(rig.spec("tar.zst"))
    assert rig.mounts == [str(rig.root)]
    assert rig.extracted == [IMAGE.decode()]
    assert not (rig.stage / "image").exists()


def test_tar_root_without_zstd_is_refused_before_any_request(tmp_path: Path) -> None:
    server = FakeServer(ok(IMAGE))
    rig = Rig(tmp_path, server)
    asked: list[str] = []

    def not_executable(path: str) -> bool:
        asked.append(path)
        return False

    rig.seams.executable = not_executable
    with pytest.raises(NetRootError, match=r"root.tar.zst: a .tar.zst root needs /usr/bin/zstd"):
        rig.run(rig.spec("tar.zst"))
    assert asked == ["/usr/bin/zstd"] and server.requests == [] and rig.mounts == []
    rig.run(rig.spec("squashfs"))  # a squashfs root needs no program from the add-on
    assert asked == ["/usr/bin/zstd"]


def test_sha256_mismatch_mounts_nothing_and_leaves_no_file(tmp_path: Path) -> None:
    rig = Rig(tmp_path, FakeServer(ok(IMAGE)))
    with pytest.raises(
        NetRootError,
        match=r"mosroot=http://10.0.0.1/root.squashfs: sha256 mismatch.*mosroot_sha256= says",
    ) as err:
        rig.run(rig.spec(sha="0" * 64))
    assert hashlib.sha256(IMAGE).hexdigest() in str(err.value)
    assert rig.mounts == [] and rig.seams.undo == [f"umount {rig.stage}/image"]
    assert not (rig.stage / "image").exists()


def test_too_little_ram_fails_before_anything_is_written(tmp_path: Path) -> None:
    rig = Rig(
        tmp_path, FakeServer(b"HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n"), 256
    )
    with pytest.raises(NetRootError, match="not enough RAM: the image is 1048576 MiB"):
        rig.run(rig.spec())
    assert rig.mounts == [] and rig.seams.undo == []


def test_body_larger_than_budget_is_cut_off(tmp_path: Path) -> None:
    big = b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * (3 * MiB)
    rig = Rig(tmp_path, FakeServer(big), mem_mib=66)  # budget: 2 MiB, length unknown
    with pytest.raises(NetRootError, match="grew past"):
        rig.run(rig.spec())
    assert rig.mounts == []


def test_transient_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    server = FakeServer(
        b"HTTP/1.1 503 Busy\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort",
        ok(IMAGE),
    )
    rig = Rig(tmp_path, server)
    slept: list[float] = []
    rig.seams.sleep = slept.append
    rig.run(rig.spec())
    assert slept == [1.0, 2.0]
    assert rig.mounts[-1] == str(rig.root)
    assert rig.seams.undo == [f"umount {rig.stage}/image"]  # the short body's tmpfs


def test_permanent_error_is_not_retried(tmp_path: Path) -> None:
    rig = Rig(tmp_path, FakeServer(b"HTTP/1.1 404 Not Found\r\n\r\n", ok(IMAGE)))
    with pytest.raises(NetRootError, match="status 404"):
        rig.run(rig.spec())


def test_retries_stop_at_the_fetch_deadline(tmp_path: Path) -> None:
    rig = Rig(tmp_path, FakeServer(*[b"HTTP/1.1 503 Busy\r\n\r\n"] * 4))
    now = [0.0]
    rig.seams.clock = lambda: now[0]
    rig.seams.sleep = lambda s: now.__setitem__(0, now[0] + s)
    spec = NetRoot(parse_url("http://10.0.0.1/root.squashfs"), SHA, "squashfs", fetch_timeout=2.5)
    with pytest.raises(NetRootError, match="status 503"):
        rig.run(spec)
    assert now[0] == 1.0  # slept once; 1 + 2 would pass the 2.5 s deadline


def test_every_failure_is_one_line_naming_the_url_as_given(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """mosroot=<url>: <cause> for each failed attempt and for the end, the URL as typed."""
    server = FakeServer(
        b"HTTP/1.1 503 Busy\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n",
    )
    rig = Rig(tmp_path, server)
    given = "HTTP://10.0.0.1:080/root.squashfs#latest"
    spec = make_netroot(given, SHA, None)
    with caplog.at_level(logging.INFO), pytest.raises(NetRootError) as err:
        rig.run(spec)
    cause = "header Content-Length: bad value '\\xb2', expected a decimal number of bytes"
    assert str(err.value).startswith(f"mosroot={given}: {cause}")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [
        f"mosroot={given}: HTTP status 503 'Busy', expected 200 (attempt 1 of 4; again in 1 s)",
        str(err.value),
    ]
    assert all(line.isprintable() for line in lines) and rig.mounts == []


def test_mount_failure_unwinds_every_mount(tmp_path: Path) -> None:
    rig = Rig(tmp_path, FakeServer(ok(IMAGE)))
    real = rig._mount

    def failing(src: str | None, target: str, fs: str | None, flags: int, data: str | None) -> None:
        if fs == "overlay":
            raise OSError(19, "No such device")
        real(src, target, fs, flags, data)

    rig.seams.mount = failing
    with pytest.raises(NetRootError, match="No such device"):
        rig.run(rig.spec())
    assert rig.mounts == []
    assert rig.seams.undo == [f"umount {rig.stage}/{d}" for d in ("rw", "lower", "image")]


def test_extract_real_zstd_and_busybox_tar(tmp_path: Path) -> None:
    if not (Path(netroot.ZSTD).exists() and Path(netroot.SH[0]).exists()):
        pytest.fail("zstd and busybox are build dependencies (build.sh BUILD_DEBS)")
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "sbin").mkdir(parents=True)
    out.mkdir()
    (src / "sbin" / "init").write_text("#!/bin/sh\n")
    os.symlink("init", src / "sbin" / "link")
    archive = tmp_path / "r.tar.zst"
    tar = subprocess.run(["tar", "-C", str(src), "-cf", "-", "."], check=True, capture_output=True)
    archive.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=tar.stdout, check=True,
                                       capture_output=True).stdout)  # fmt: skip
    netroot._extract(str(archive), str(out))
    assert (out / "sbin" / "init").read_text() == "#!/bin/sh\n"
    assert os.readlink(out / "sbin" / "link") == "init"
    archive.write_bytes(b"not zstd")
    with pytest.raises(NetRootError, match="unpacking failed"):
        netroot._extract(str(archive), str(out))


def test_init_parameters_are_not_network_typos() -> None:
    from mosnet.config import cmdline

    line = f"mosroot=http://h/r.sqfs mosroot_sha256={SHA} mosroot_fetch_timeout=9 mosshell"
    line += " mosfirewal=x"
    assert cmdline.parse(line).notes == ("unknown parameter 'mosfirewal' ignored (typo?)",)
