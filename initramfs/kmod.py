"""Kernel-module closure and staging for the image.

A Debian kernel .deb ships no modules.dep, so the source tree is indexed with
the host's depmod first. The closure follows modules.dep plus the pre/post
softdeps of modules.softdep (softdeps may name aliases, e.g. libcrc32c wants
"crc32c"). Modules are copied decompressed, so the image's busybox modprobe
needs no xz/zstd support, and the staged tree is re-indexed with depmod.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Drivers for common hardware; build.sh --hostonly replaces them with the
# build machine's own (initramfs/hostonly.py).
HARDWARE_MODULES: tuple[str, ...] = (
    # network interfaces, virtual first
    "virtio_net", "virtio_pci", "e1000", "e1000e", "igb", "ixgbe", "i40e", "ice",
    "bnxt_en", "mlx5_core", "r8169", "tg3",
    # disks
    "virtio_blk", "virtio_scsi", "sd_mod", "nvme", "ahci", "virtio_rng",
)  # fmt: skip
# What mosnet itself needs on any machine.
MOSNET_MODULES: tuple[str, ...] = (
    # file systems
    "ext4", "xfs", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "squashfs", "overlay", "loop",
    # bridging, datacenter uplinks (bond=, vlan=), namespaces, packet sockets
    "bridge", "br_netfilter", "bonding", "8021q", "veth", "tun", "af_packet",
    # nftables for the MAC NAT and the bridge filters
    "nf_tables", "nft_ct", "nft_chain_nat", "nft_nat", "nft_masq", "nft_redir",
    "nft_reject_inet", "nft_reject_bridge", "nft_limit", "nft_log", "nft_counter",
    "nft_fib_inet", "nft_meta_bridge", "nf_conntrack_bridge",
    "openvswitch", "crc32c_generic",
)  # fmt: skip
DEFAULT_MODULES: tuple[str, ...] = HARDWARE_MODULES + MOSNET_MODULES

_COMPRESSED = (".ko.xz", ".ko.zst", ".ko.gz")
_COPIED_INDEXES = ("modules.builtin", "modules.builtin.modinfo", "modules.order")


class KmodError(Exception):
    """The module tree is unusable (no index, bad compression, depmod failed)."""


@dataclass(frozen=True)
class ModuleIndex:
    """What modules.dep, modules.softdep and modules.alias say about a tree."""

    paths: Mapping[str, str]  # module name -> path relative to the kver dir
    deps: Mapping[str, tuple[str, ...]]  # module name -> names, as listed
    pre: Mapping[str, tuple[str, ...]]  # softdep pre: names or aliases
    post: Mapping[str, tuple[str, ...]]
    aliases: Mapping[str, tuple[str, ...]]  # exact (non-glob) alias -> names


@dataclass(frozen=True)
class ModuleClosure:
    """Modules to ship, dependencies first, and wanted names not found."""

    names: tuple[str, ...]
    paths: tuple[str, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True)
class StagedModules:
    """Result of :func:`stage_modules`."""

    kver: str
    moddir: Path  # <staging>/lib/modules/<kver>
    closure: ModuleClosure
    size: int  # bytes of plain .ko files written


def normalize(name: str) -> str:
    """Module names treat '-' and '_' alike, as modprobe does."""
    return name.replace("-", "_")


def module_name(path: str) -> str:
    """``kernel/net/foo-bar.ko.xz`` -> ``foo_bar``."""
    base = path.rsplit("/", 1)[-1]
    for suffix in (*_COMPRESSED, ".ko"):
        if base.endswith(suffix):
            return normalize(base[: -len(suffix)])
    raise KmodError(f"{path}: not a kernel module file name")


def parse_modules_dep(text: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Parse modules.dep into (name -> path, name -> dependency names)."""
    paths: dict[str, str] = {}
    deps: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        head, sep, rest = line.partition(":")
        if not sep:
            raise KmodError(f"modules.dep: malformed line {line!r}")
        name = module_name(head.strip())
        paths[name] = head.strip()
        deps[name] = tuple(module_name(p) for p in rest.split())
    return paths, deps


def parse_softdep(text: str) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Parse ``softdep MOD pre: A B post: C`` lines into (pre, post) maps."""
    pre: dict[str, list[str]] = {}
    post: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "softdep":
            continue
        name, bucket = normalize(words[1]), None
        for word in words[2:]:
            if word in ("pre:", "post:"):
                bucket = pre if word == "pre:" else post
            elif bucket is not None:
                bucket.setdefault(name, []).append(normalize(word))
    return _freeze(pre), _freeze(post)


def parse_aliases(text: str) -> dict[str, tuple[str, ...]]:
    """Parse exact aliases of modules.alias; glob aliases (hardware ids) are skipped."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "alias" and not any(c in words[1] for c in "*?["):
            out.setdefault(normalize(words[1]), []).append(normalize(words[2]))
    return _freeze(out)


def _freeze(d: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {k: tuple(v) for k, v in d.items()}


def _read_optional(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def load_index(moddir: Path) -> ModuleIndex:
    """Read the depmod output of ``<root>/lib/modules/<kver>``."""
    dep_file = moddir / "modules.dep"
    if not dep_file.is_file():
        raise KmodError(f"{dep_file}: missing (run depmod first)")
    paths, deps = parse_modules_dep(dep_file.read_text())
    pre, post = parse_softdep(_read_optional(moddir / "modules.softdep"))
    aliases = parse_aliases(_read_optional(moddir / "modules.alias"))
    return ModuleIndex(paths, deps, pre, post, aliases)


def _lookup(index: ModuleIndex, name: str) -> tuple[str, ...]:
    """Module names for a name or exact alias; empty if the kernel has none."""
    name = normalize(name)
    if name in index.paths:
        return (name,)
    return tuple(sorted(m for m in index.aliases.get(name, ()) if m in index.paths))


def resolve_modules(index: ModuleIndex, wanted: Iterable[str]) -> ModuleClosure:
    """Closure of ``wanted`` in load order: every module after its dependencies."""
    order: list[str] = []
    done: set[str] = set()
    missing: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        done.add(name)  # before recursing: softdeps may form cycles
        for soft in index.pre.get(name, ()):
            for mod in _lookup(index, soft):
                visit(mod)
        # modprobe loads the last listed dependency first
        for dep in reversed(index.deps.get(name, ())):
            visit(dep)
        order.append(name)
        for soft in index.post.get(name, ()):
            for mod in _lookup(index, soft):
                visit(mod)

    for want in wanted:
        found = _lookup(index, want)
        if not found and normalize(want) not in missing:
            missing.append(normalize(want))
        for mod in found:
            visit(mod)
    return ModuleClosure(tuple(order), tuple(index.paths[n] for n in order), tuple(missing))


def run_depmod(root: Path, kver: str) -> None:
    """Index ``<root>/lib/modules/<kver>`` with the host's depmod."""
    depmod = shutil.which("depmod") or "/sbin/depmod"
    try:
        subprocess.run([depmod, "-b", str(root), kver], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        raise KmodError(f"depmod -b {root} {kver} failed: {exc.stderr.decode().strip()}") from exc


def decompress_module(src: Path) -> bytes:
    """Return the plain ELF of a .ko, .ko.xz, .ko.zst or .ko.gz file."""
    data = src.read_bytes()
    try:
        if src.name.endswith(".ko.xz"):
            return lzma.decompress(data)
        if src.name.endswith(".ko.gz"):
            return gzip.decompress(data)
        if src.name.endswith(".ko.zst"):
            return _unzstd(data)
    except (lzma.LZMAError, OSError, EOFError) as exc:
        raise KmodError(f"{src}: cannot decompress: {exc}") from exc
    return data


def _unzstd(data: bytes) -> bytes:
    try:
        import zstandard
    except ImportError:
        proc = subprocess.run(
            ["zstd", "-d", "-c", "-q"], input=data, check=True, capture_output=True
        )
        return proc.stdout
    try:
        # stream_reader copes with frames that do not record their content size
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            return reader.read()
    except zstandard.ZstdError as exc:
        raise OSError(str(exc)) from exc


def plain_path(rel: str) -> str:
    """Path of the decompressed copy: ``kernel/a.ko.xz`` -> ``kernel/a.ko``."""
    for suffix in _COMPRESSED:
        if rel.endswith(suffix):
            return rel[: -len(suffix)] + ".ko"
    return rel


def stage_modules(
    src_root: Path,
    kver: str,
    wanted: Iterable[str],
    staging: Path,
    run_depmod_: bool = True,
) -> StagedModules:
    """Copy the closure of ``wanted`` from ``src_root`` into ``staging``.

    Both roots hold ``lib/modules/<kver>``. With ``run_depmod_`` the source is
    indexed if it has no modules.dep and the staged tree is always re-indexed;
    without it (unit tests) the source must already carry modules.dep.
    """
    src = src_root / "lib" / "modules" / kver
    if not src.is_dir():
        raise KmodError(f"{src}: no such module directory")
    if run_depmod_ and not (src / "modules.dep").is_file():
        run_depmod(src_root, kver)
    closure = resolve_modules(load_index(src), wanted)
    dst = staging / "lib" / "modules" / kver
    dst.mkdir(parents=True, exist_ok=True)
    size = 0
    for rel in closure.paths:
        out = dst / plain_path(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = decompress_module(src / rel)
        out.write_bytes(data)
        size += len(data)
    for name in _COPIED_INDEXES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    if run_depmod_:
        run_depmod(staging, kver)
    return StagedModules(kver, dst, closure, size)
