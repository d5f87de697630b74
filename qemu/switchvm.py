"""A second QEMU guest playing switch and gateway for bond and VLAN uplinks.

The test host's kernel has neither 8021q nor bonding, so the far side of a
tagged link or of an LACP bond is a tiny guest booting out/vmlinuz with its
own initramfs: static busybox, iproute2's ip, dnsmasq and the kernel modules
for virtio-net, bonding, 8021q and the bridge. Guests are wired by QEMU UDP
socket netdevs ("cables"): no taps, no start order. The case's set-up is a
shell script of qemu/switch-init.sh's helpers (bond, bridge, vlan, gateway),
added to the image as a second cpio; afterwards the host types commands on
the switch's console (:meth:`Switch.run`).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import socket
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from initramfs import elf, kmod
from initramfs.cpio import CpioEntry, write_newc
from qemu.vm import OUT, TOP, Vm, VmSpec

INIT = TOP / "qemu" / "switch-init.sh"
CACHE = TOP / ".cache" / "switchvm"
TOOLS = (Path("/usr/sbin/dnsmasq"), Path("/usr/sbin/ip"), Path("/usr/sbin/bridge"))
MODULES = ("virtio_pci", "virtio_net", "bonding", "8021q", "bridge")
GW4, GW6, NET4 = "10.77.0.1", "fd00:77::1", "10.77.0"
_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "run")


def module_tree(kernel_out: Path = OUT) -> Path:
    """``lib/modules/<kver>`` of the kernel the images in ``kernel_out`` were built for."""
    kver = json.loads((kernel_out / "image-report.json").read_text())["kver"]
    # .cache/kernel/<package>/root: "current" is the last build's, others stay
    kernels = TOP / ".cache" / "kernel"
    for root in (kernels / "current", *sorted(kernels.glob("*"))):
        tree = root / "root" / "lib" / "modules" / str(kver)
        if (tree / "modules.dep").is_file():
            return tree
    raise FileNotFoundError(f"{kernels}: no module tree for {kver} (run ./build.sh)")


def _cache_key(tree: Path) -> str:
    h = hashlib.sha256()
    h.update(INIT.read_bytes() + Path(__file__).read_bytes())
    for p in (Path("/bin/busybox"), *TOOLS, tree / "modules.dep"):
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _file(
    name: str | PurePosixPath, mode: int = 0o755, data: bytes = b"", source: Path | None = None
) -> CpioEntry:
    return CpioEntry(str(name).lstrip("/"), stat.S_IFREG | mode, data, source)


def _entries(tree: Path) -> Iterator[CpioEntry]:
    yield _file("init", source=INIT)
    yield _file("bin/busybox", source=Path("/bin/busybox"))
    closure = elf.resolve(TOOLS)
    for f in closure.files:
        yield _file(f.image_path, source=f.source)
    for link in closure.links:
        name = str(link.image_path).lstrip("/")
        yield CpioEntry(name, stat.S_IFLNK | 0o777, link.target.encode())
    mods = kmod.resolve_modules(kmod.load_index(tree), MODULES)
    for name, rel in zip(mods.names, mods.paths, strict=True):
        yield _file(f"lib/modules/{name}.ko", 0o644, data=kmod.decompress_module(tree / rel))
    yield _file("etc/modules", 0o644, data="".join(f"{n}\n" for n in mods.names).encode())
    yield _file("etc/passwd", 0o644, data=b"root:x:0:0:root:/:/bin/sh\n")
    yield _file("etc/group", 0o644, data=b"root:x:0:\n")
    yield CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))


def _with_dirs(entries: list[CpioEntry]) -> list[CpioEntry]:
    """Every parent directory as an entry of its own, as the kernel's unpacker wants."""
    dirs = set(_DIRS)
    for e in entries:
        dirs.update(str(p) for p in PurePosixPath(e.name).parents if str(p) != ".")
    return [CpioEntry(d, stat.S_IFDIR | 0o755) for d in sorted(dirs)] + entries


def base_image(kernel_out: Path = OUT) -> Path:
    """The switch initramfs (uncompressed newc), rebuilt when an input changes."""
    tree = module_tree(kernel_out)
    path = CACHE / f"switch-{tree.name}-{_cache_key(tree)}.img"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        for old in CACHE.glob(f"switch-{tree.name}-*.img"):
            old.unlink()
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            write_newc(out, _with_dirs(list(_entries(tree))), 0)
        tmp.rename(path)
    return path


def case_image(base: Path, script: str, dest: Path) -> Path:
    """``base`` followed by a cpio holding ``script`` as /etc/switch.sh."""
    extra = io.BytesIO()
    write_newc(extra, [_file("etc/switch.sh", 0o644, data=script.encode())], 0)
    with dest.open("wb") as out, base.open("rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)
        out.write(extra.getvalue())
    return dest


@dataclass(frozen=True)
class Cable:
    """A point-to-point Ethernet link: two UDP ports on 127.0.0.1, one per end."""

    a: int
    b: int

    def end(self, side: int, netdev: str, mac: str) -> tuple[str, ...]:
        """QEMU args for end ``side`` (0 or 1): a socket netdev and a 1 Gb/s full-duplex NIC.

        bonding's 802.3ad takes a port without speed and duplex as individual.
        """
        own, peer = (self.a, self.b) if side == 0 else (self.b, self.a)
        backend = f"socket,id={netdev},udp=127.0.0.1:{peer},localaddr=127.0.0.1:{own}"
        nic = f"virtio-net-pci,netdev={netdev},mac={mac},speed=1000,duplex=full,romfile="
        return ("-netdev", backend, "-device", nic)


def cables(n: int) -> list[Cable]:
    """``n`` cables on free UDP ports (held open together, so all differ)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2 * n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        ports = [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
    return [Cable(ports[2 * i], ports[2 * i + 1]) for i in range(n)]


class Switch:
    """A running switch guest; ``nics`` are QEMU args from :meth:`Cable.end`."""

    def __init__(self, workdir: Path, script: str, nics: Sequence[str], name: str = "switch"):
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        initrd = case_image(base_image(), script, workdir / f"{name}.img")
        # quiet: bonding's and the bridge's kernel messages stay off the console
        spec = VmSpec(initrd=initrd, append="quiet", net="none", memory_mb=256, extra=tuple(nics))
        self.vm = Vm(spec, workdir / f"{name}-console.log")
        self._seq = 0

    def wait_ready(self, timeout: float = 120) -> str:
        self.vm.wait_for(r"SWITCH: ready", timeout)  # SeaBIOS' escapes may precede it
        return self.vm.text()

    def run(self, command: str, timeout: float = 30) -> str:
        """Run ``command`` in the switch's shell; its output (stdout and stderr)."""
        self._seq += 1
        start = len(self.vm.text())
        # The quotes keep a stray echo of the typed line from matching the marker.
        self.vm.send(f'{command}; echo "@@E""ND {self._seq} $?"\n')
        found = self.vm.wait_for(rf"@@END {self._seq} (\d+)\r?$", timeout)
        out = self.vm.text()[start : found.start()]
        return out.replace("\r\n", "\n")

    def stop(self) -> None:
        self.vm.stop()

    def __enter__(self) -> Switch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# LACP port state bits: aggregation, synchronization, collecting, distributing
LACP_IN_USE = 0x04 | 0x08 | 0x10 | 0x20


@dataclass
class Bonding:
    """What ``/proc/net/bonding/<bond>`` says.

    A slave's LACPDU details are its keys with the prefix ``actor `` or
    ``partner `` (``partner system mac address``, ``actor port state``).
    """

    fields: dict[str, str] = field(default_factory=dict)  # first occurrence of each key
    slaves: dict[str, dict[str, str]] = field(default_factory=dict)  # slave -> its fields

    @property
    def aggregators(self) -> set[str]:
        return {s.get("Aggregator ID", "") for s in self.slaves.values()}

    @property
    def partners(self) -> set[str]:
        return {s.get("partner system mac address", "") for s in self.slaves.values()}

    def lacp_in_use(self) -> bool:
        """Every slave collects and distributes in one aggregator."""
        states = [int(s.get("actor port state", "0")) for s in self.slaves.values()]
        ok = all(st & LACP_IN_USE == LACP_IN_USE for st in states)
        return bool(states) and ok and len(self.aggregators) == 1


def bonding(text: str) -> Bonding:
    """Parse ``/proc/net/bonding/<bond>`` (console text: stray lines are skipped)."""
    out = Bonding()
    slave: str | None = None
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if slave is not None and line.startswith("details ") and line.endswith(":"):
            section = line.split()[1] + " "  # "details partner lacp pdu:" -> "partner "
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        if key == "Slave Interface":
            slave, section = value, ""
            out.slaves[value] = {}
        elif slave is None:
            out.fields.setdefault(key, value)
        else:
            out.slaves[slave].setdefault(section + key, value)
    return out


if __name__ == "__main__":
    print(base_image())
