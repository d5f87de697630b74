from __future__ import annotations

import errno
import os
import pathlib
import shutil
import subprocess

import pytest

from init import modindex, modules, syscalls
from init.modindex import ModuleIndex
from init.modules import Loader

DEP = """\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko \
kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko \
kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko:
kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko
kernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko
kernel/drivers/ata/libata.ko:
kernel/arch/x86/crypto/crc32c-intel.ko.xz:
kernel/drivers/misc/broken.ko:
kernel/drivers/misc/needs_broken.ko: kernel/drivers/misc/broken.ko
kernel/drivers/misc/already.ko:
kernel/drivers/usb/hub-thing.ko:
kernel/drivers/misc/ghost.ko:
"""

ALIAS = """\
# Aliases extracted from modules themselves.
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias pci:v*d*sv*sd*bc01sc06i01* ahci
alias usb:v1D6Bp000[23]d* hub-thing
alias platform:broken broken
alias platform:needsbroken needs_broken
alias platform:already already
alias platform:ghost ghost
alias fs-ext4 ext4
alias crc32c crc32c-intel
"""

SOFTDEP = """\
# Soft dependencies extracted from modules themselves.
softdep ahci pre: crc32c-intel
softdep virtio_net post: e1000e
"""

BUILTIN = "kernel/drivers/virtio/virtio.ko\nkernel/fs/ext4/ext4.ko\n"


@pytest.fixture
def modroot(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "lib" / "modules" / "6.1.0-test"
    for line in DEP.replace("\\\n", "").splitlines():
        ko = root / line.split(":")[0]
        ko.parent.mkdir(parents=True, exist_ok=True)
        ko.write_bytes(b"\x7fELF")
    (root / "kernel/drivers/misc/ghost.ko").unlink()  # listed but missing on disk
    (root / "modules.dep").write_text(DEP.replace("\\\n", ""))
    (root / "modules.alias").write_text(ALIAS)
    (root / "modules.softdep").write_text(SOFTDEP)
    (root / "modules.builtin").write_text(BUILTIN)
    return root


class Kernel:
    """Stands in for finit_module: records module names in load order."""

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.order: list[str] = []
        self.flags: dict[str, int] = {}
        self.fail = fail or {}
        self.hooks: dict[str, list[tuple[pathlib.Path, str]]] = {}

    def __call__(self, fd: int, params: str, flags: int) -> None:
        name = modindex.modname(os.readlink(f"/proc/self/fd/{fd}"))
        self.flags[name] = flags
        if name in self.fail:
            raise OSError(self.fail[name], os.strerror(self.fail[name]))
        self.order.append(name)
        for devdir, alias in self.hooks.get(name, ()):  # a driver registering children
            devdir.mkdir(parents=True, exist_ok=True)
            (devdir / "modalias").write_text(alias + "\n")


def loader(modroot: pathlib.Path, kernel: Kernel, proc: str = "/nonexistent") -> Loader:
    return Loader(ModuleIndex.load(str(modroot)), finit=kernel, proc_modules=proc)


def test_modname() -> None:
    assert modindex.modname("kernel/a/snd-hda-intel.ko.zst") == "snd_hda_intel"
    assert modindex.modname("e1000e.ko") == "e1000e"
    assert modindex.modname("crc32c-intel") == "crc32c_intel"


def test_index_parsing(modroot: pathlib.Path) -> None:
    idx = ModuleIndex.load(str(modroot))
    assert idx.deps["virtio_net"] == ("net_failover", "failover", "virtio_ring")
    assert idx.paths["crc32c_intel"].endswith("crc32c-intel.ko.xz")
    assert idx.builtin == frozenset({"virtio", "ext4"})
    assert idx.softdep_pre["ahci"] == ("crc32c_intel",)
    assert idx.softdep_post["virtio_net"] == ("e1000e",)
    assert idx.closure("virtio_net") == ("failover", "net_failover", "virtio_ring", "virtio_net")


def test_alias_matching(modroot: pathlib.Path) -> None:
    idx = ModuleIndex.load(str(modroot))
    assert idx.resolve("virtio:d00000001v00001AF4") == ("virtio_net",)
    assert idx.resolve("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00") == ("virtio_pci",)
    assert idx.resolve("pci:v00008086d00002922sv0sd0bc01sc06i01") == ("ahci",)
    assert idx.resolve("usb:v1D6Bp0003d0601dc09") == ("hub_thing",)
    assert idx.resolve("usb:v1D6Bp0001d0601dc09") == ()  # [23] excludes 1
    assert idx.resolve("hub-thing") == ("hub_thing",)  # a name, - normalised
    assert idx.resolve("fs-ext4") == ("ext4",)
    assert idx.resolve("crc32c") == ("crc32c_intel",)
    assert idx.resolve("nothing") == ()


def test_load_deps_first_builtin_skipped_proc_modules(
    modroot: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    proc = tmp_path / "modules"
    proc.write_text("failover 16384 1 net_failover, Live 0xffffffffc0000000\n")
    kernel = Kernel()
    ld = loader(modroot, kernel, str(proc))
    assert ld.load("virtio_pci") is True
    assert kernel.order == ["virtio_pci_modern_dev", "virtio_ring", "virtio_pci"]  # virtio builtin
    assert ld.load("virtio:d00000001v00001AF4") is True
    # failover is already in /proc/modules; softdep post e1000e comes after.
    assert kernel.order[3:] == ["net_failover", "virtio_net", "e1000e"]
    assert ld.load("virtio_net") is True and len(kernel.order) == 6  # idempotent
    assert ld.load("fs-ext4") is True and len(kernel.order) == 6  # builtin


def test_softdep_pre_and_compressed_flag(modroot: pathlib.Path) -> None:
    kernel = Kernel()
    ld = loader(modroot, kernel)
    assert ld.load("ahci")
    assert kernel.order == ["crc32c_intel", "libata", "libahci", "ahci"]
    assert kernel.flags["crc32c_intel"] == modules.MODULE_INIT_COMPRESSED_FILE
    assert kernel.flags["ahci"] == 0


def test_failures_logged_and_loading_continues(
    modroot: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    kernel = Kernel(fail={"broken": errno.EINVAL, "already": errno.EEXIST})
    ld = loader(modroot, kernel)
    with caplog.at_level("WARNING", logger="mosnet.init.modules"):
        assert ld.load("needs_broken") is False
        assert ld.load("already") is True  # EEXIST is success
        assert ld.load("ghost") is False
        assert ld.load("no-such-thing") is False
        assert ld.load("e1000e") is True
    assert ld.failed["broken"] == "Invalid argument"
    assert ld.failed["needs_broken"] == "dependency broken failed"
    assert ld.failed["ghost"].startswith("cannot open")
    assert "no-such-thing" in ld.failed
    assert "already" in ld.present and "already" not in ld.failed
    assert kernel.order == ["e1000e"]
    assert "module broken: Invalid argument" in caplog.text
    assert "needs_broken" in caplog.text
    # A failed module is not retried.
    assert ld.load("broken") is False and kernel.order == ["e1000e"]


def _dev(
    sysfs: pathlib.Path, rel: str, modalias: str, pci_class: str | None = None
) -> pathlib.Path:
    d = sysfs / "devices" / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "modalias").write_text(modalias + "\n")
    if pci_class:
        (d / "class").write_text(pci_class + "\n")
    return d


@pytest.fixture
def sysfs(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "sys"
    # Sorted walk order would put the disk controller first; NICs must still win.
    _dev(root, "pci0000:00/0000:00:01.0", "pci:v00008086d00002922sv0sd0bc01sc06i01", "0x010601")
    _dev(root, "pci0000:00/0000:00:02.0", "pci:v00008086d000010D3sv0sd0bc02sc00i00", "0x020000")
    _dev(root, "pci0000:00/0000:00:03.0", "pci:v00001AF4d00001000sv0sd1bc02sc00i00", "0x020000")
    _dev(root, "platform/broken", "platform:broken")
    _dev(root, "platform/needsbroken", "platform:needsbroken")
    _dev(root, "LNXSYSTM:00/PNP0A03:00", "acpi:PNP0A03:")
    bus = root / "bus" / "pci" / "devices"
    bus.mkdir(parents=True)
    (bus / "0000:00:01.0").symlink_to(root / "devices/pci0000:00/0000:00:01.0")
    return root


def test_devices_nics_first_and_deduplicated(sysfs: pathlib.Path) -> None:
    devs = modules.devices(str(sysfs))
    assert [d.is_nic for d in devs][:2] == [True, True]
    assert not any(d.is_nic for d in devs[2:])
    assert len(devs) == 6
    vnet = _dev(sysfs, "x/virtio0", "virtio:d00000001v00001AF4")
    vblk = _dev(sysfs, "x/virtio1", "virtio:d00000002v00001AF4")
    nic = {d.path: d.is_nic for d in modules.devices(str(sysfs))}
    assert nic[str(vnet)] is True and nic[str(vblk)] is False


def test_coldplug_passes_nic_first(modroot: pathlib.Path, sysfs: pathlib.Path) -> None:
    kernel = Kernel(fail={"broken": errno.ENODEV})
    pci3 = sysfs / "devices/pci0000:00/0000:00:03.0"
    # virtio_pci creates the virtio devices only once it is loaded.
    kernel.hooks["virtio_pci"] = [
        (pci3 / "virtio0", "virtio:d00000001v00001AF4"),
        (pci3 / "virtio1", "virtio:d00000002v00001AF4"),
    ]
    ld = loader(modroot, kernel)
    ticks = iter([10.0, 10.25])
    report = modules.coldplug(ld, str(sysfs), clock=lambda: next(ticks))
    order = kernel.order
    nic_mods = {"e1000e", "virtio_pci"}
    first_non_nic = min(order.index(m) for m in ("libata", "crc32c_intel"))
    assert all(order.index(m) < first_non_nic for m in nic_mods)
    # Pass 2 picked up the virtio devices: net before blk.
    assert order.index("virtio_net") < order.index("virtio_blk")
    assert order.index("virtio_net") > order.index("ahci")
    assert report.passes == 3
    assert report.loaded == tuple(order)
    assert dict(report.failed) == {
        "broken": "No such device",
        "needs_broken": "dependency broken failed",
    }
    assert report.unmatched == ("acpi:PNP0A03:",)
    assert report.seconds == 0.25
    # A later coldplug is idempotent and cheap.
    again = modules.coldplug(ld, str(sysfs))
    assert again.loaded == () and again.passes == 1 and len(kernel.order) == len(order)


def test_coldplug_max_passes(modroot: pathlib.Path, sysfs: pathlib.Path) -> None:
    ld = loader(modroot, Kernel())
    assert modules.coldplug(ld, str(sysfs), max_passes=1).passes == 1


def test_coldplug_missing_sysfs(modroot: pathlib.Path, tmp_path: pathlib.Path) -> None:
    report = modules.coldplug(loader(modroot, Kernel()), str(tmp_path / "nosys"))
    assert report.loaded == () and report.failed == () and report.passes == 1


def test_empty_index(tmp_path: pathlib.Path) -> None:
    idx = ModuleIndex.load(str(tmp_path / "absent"))
    assert idx.resolve("virtio_net") == () and idx.builtin == frozenset()


def test_install_helper(tmp_path: pathlib.Path) -> None:
    proc = tmp_path / "modprobe_proc"
    proc.write_text("/sbin/modprobe\n")
    helper = tmp_path / "modprobe"
    assert modules.install_helper(str(helper), str(proc)) is not None  # missing
    helper.write_text("#!/bin/sh\n")
    helper.chmod(0o755)
    assert modules.install_helper(str(helper), str(proc)) is None
    assert proc.read_text() == f"{helper}\n"
    problem = modules.install_helper(str(helper), str(tmp_path / "no" / "file"))
    assert problem is not None and "cannot write" in problem


# The kernel ./build.sh fetched (whatever release linux-image-amd64 points at).
_MODROOT = pathlib.Path(__file__).resolve().parents[2] / ".cache/kernel/current/root/lib/modules"
_KVERS = sorted(_MODROOT.iterdir()) if _MODROOT.is_dir() else []
REAL = _KVERS[0] if _KVERS else _MODROOT / "absent"


@pytest.mark.skipif(
    not REAL.is_dir() or shutil.which("depmod", path="/usr/sbin:/sbin") is None,
    reason="kernel module tree or depmod absent",
)
def test_real_tree_virtio_net(tmp_path: pathlib.Path) -> None:
    dst = tmp_path / "lib" / "modules" / REAL.name
    for rel in (
        "kernel/drivers/net/virtio_net.ko",
        "kernel/drivers/net/net_failover.ko",
        "kernel/net/core/failover.ko",
        "kernel/drivers/virtio/virtio.ko",
        "kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio_pci.ko",
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
        "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    ):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REAL / rel, dst / rel)
    for name in ("modules.builtin", "modules.order", "modules.builtin.modinfo"):
        shutil.copy(REAL / name, dst / name)
    depmod = shutil.which("depmod", path="/usr/sbin:/sbin")
    assert depmod
    subprocess.run([depmod, "-b", str(tmp_path), REAL.name], check=True, capture_output=True)
    idx = ModuleIndex.load(str(dst))
    assert idx.resolve("virtio:d00000001v00001AF4") == ("virtio_net",)
    closure = idx.closure("virtio_net")
    assert closure[-1] == "virtio_net"
    assert closure.index("failover") < closure.index("net_failover")
    assert {"virtio", "virtio_ring"} <= set(closure)
    assert "virtio_pci" in idx.resolve("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
    kernel = Kernel()
    Loader(idx, finit=kernel, proc_modules="/nonexistent").load("virtio:d00000001v00001AF4")
    assert kernel.order == list(closure)


def test_real_finit_module_syscall_reports_errno() -> None:
    # fd -1 can never load anything: EBADF, EPERM (no CAP_SYS_MODULE) or
    # ENOSYS (kernel without module support, as in some sandboxes).
    with pytest.raises(OSError) as info:
        syscalls.finit_module(-1)
    assert info.value.errno in (errno.EBADF, errno.EPERM, errno.ENOSYS)
    assert info.value.strerror == os.strerror(info.value.errno)


def test_load_all_distro_tree_first_private_tree_adds(
    modroot: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """Chain mode: the distro's tree plus mosnet's private one (bridge and friends)."""
    private = tmp_path / "private" / "6.1.0-test"
    for rel in ("kernel/net/bridge/bridge.ko", "kernel/net/llc/llc.ko",
                "kernel/drivers/net/virtio_net.ko"):  # fmt: skip
        (private / rel).parent.mkdir(parents=True, exist_ok=True)
        (private / rel).write_bytes(b"\x7fELF")
    (private / "modules.dep").write_text(
        "kernel/net/bridge/bridge.ko: kernel/net/llc/llc.ko\nkernel/net/llc/llc.ko:\n"
        "kernel/drivers/net/virtio_net.ko:\n"
    )
    (private / "modules.alias").write_text("alias rtnl-link-bridge bridge\n")
    (private / "modules.builtin").write_text("kernel/net/packet/af_packet.ko\n")
    idx = ModuleIndex.load_all([str(modroot), str(private), str(tmp_path / "absent")])
    # The distro's own copy and dependencies win for a module both trees have.
    assert idx.paths["virtio_net"] == str(modroot / "kernel/drivers/net/virtio_net.ko")
    assert idx.deps["virtio_net"] == ("net_failover", "failover", "virtio_ring")
    assert idx.closure("bridge") == ("llc", "bridge")
    assert idx.paths["bridge"].startswith(str(private))
    assert idx.resolve("rtnl-link-bridge") == ("bridge",)
    assert idx.match_alias("virtio:d00000001v00001AF4") == ("virtio_net",)
    assert {"ext4", "af_packet"} <= idx.builtin
    kernel = Kernel()
    assert Loader(idx, finit=kernel, proc_modules="/nonexistent").load("bridge")
    assert kernel.order == ["llc", "bridge"]
    # Without the private tree (the default image) it is the plain index.
    assert ModuleIndex.load_all([str(modroot), str(tmp_path / "absent")]).paths == (
        ModuleIndex.load(str(modroot)).paths
    )


def test_bonding_is_loaded_without_a_bond0_of_its_own(tmp_path: pathlib.Path) -> None:
    """bond= names its bonds; the driver's default bond0 would be an empty round-robin one."""
    root = tmp_path / "lib/modules/6.1.0-test"
    (root / "kernel/drivers/net/bonding").mkdir(parents=True)
    (root / "kernel/drivers/net/bonding/bonding.ko").write_bytes(b"\x7fELF")
    (root / "kernel/net/8021q").mkdir(parents=True)
    (root / "kernel/net/8021q/8021q.ko").write_bytes(b"\x7fELF")
    (root / "modules.dep").write_text(
        "kernel/drivers/net/bonding/bonding.ko:\nkernel/net/8021q/8021q.ko:\n"
    )
    params: dict[str, str] = {}

    def finit(fd: int, options: str, flags: int) -> None:
        params[modindex.modname(os.readlink(f"/proc/self/fd/{fd}"))] = options

    ld = Loader(ModuleIndex.load(str(root)), finit=finit, proc_modules="/nonexistent")
    assert ld.load("bonding") and ld.load("8021q")
    assert params == {"bonding": "max_bonds=0", "8021q": ""}
