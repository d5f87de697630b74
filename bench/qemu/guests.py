"""QEMU boot, guests: the busybox reference image, and one-off boots other benches use.

``build_reference`` writes the reference initramfs (busybox, the udhcpc
script and the virtio/ext4 modules); ``unpack_ms`` and ``mapped_files`` boot
an image once for the image size bench.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from bench.common import busybox_ref, dracut_ref
from bench.qemu.console import NET, UNPACK_END, UNPACK_START, console_lines, parse_maps, stamp_of
from initramfs.build import compress
from initramfs.kmod import decompress_module, load_index, resolve_modules
from initramfs.tree import Tree, write_cpio
from qemu.topology import Gateway
from qemu.vm import OUT, Vm, VmSpec

KERNEL_ROOT = dracut_ref.KERNEL_ROOT
RUN_TIMEOUT = 240.0  # one boot, TCG; mosnet takes ~45 s, dracut ~65 s here
APPEND = "root=/dev/vda rw"
REF_MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "ext4")


def reference_tree(kernel_root: Path = KERNEL_ROOT, root: str = "/dev/vda") -> Tree:
    """busybox + udhcpc + the virtio/ext4 modules: the reference initramfs."""
    kver = dracut_ref.kernel_version(kernel_root)
    moddir = kernel_root / "lib" / "modules" / kver
    closure = resolve_modules(load_index(moddir), REF_MODULES)
    if closure.missing:
        raise RuntimeError(f"{moddir}: no module {', '.join(closure.missing)}")
    tree = Tree()
    for d in ("/bin", "/proc", "/sys", "/dev", "/run", "/sysroot", "/etc", "/tmp"):
        tree.add_dir(d)
    tree.add_node("/dev/console", "c", 5, 1, 0o600)
    tree.add_file("/bin/busybox", Path(busybox_ref.BUSYBOX), 0o755, part="busybox")
    for applet in busybox_ref.busybox_applets(modules=True):
        tree.add_symlink(f"/bin/{applet}", "busybox", part="busybox")
    script = busybox_ref.busybox_init(root, modules=closure.names, rw=True, fstype="ext4")
    tree.add_bytes("/init", script.encode(), 0o755)
    tree.add_bytes("/udhcpc.sh", busybox_ref.UDHCPC_SCRIPT.encode(), 0o755)
    for name, rel in zip(closure.names, closure.paths, strict=True):
        data = decompress_module(moddir / rel)
        tree.add_bytes(f"/lib/modules/{name}.ko", data, 0o644, part="modules")
    return tree


def build_reference(out: Path, kernel_root: Path = KERNEL_ROOT) -> dict[str, Any]:
    """Write the reference image (newc, zstd like mosnet's); return what it holds."""
    tree = reference_tree(kernel_root)
    buf = io.BytesIO()
    cpio_size = write_cpio(tree, buf, 0)
    data = compress(buf.getvalue(), "zstd")
    out.write_bytes(data)
    mods = [p.name[: -len(".ko")] for p, _ in tree.items() if p.name.endswith(".ko")]
    return {
        "bytes": len(data),
        "cpio_bytes": cpio_size,
        "parts": tree.sizes_by_part(),
        "modules": mods,
    }


def unpack_ms(
    initrd: Path, log: Path, timeout: float, kernel: Path = OUT / "vmlinuz"
) -> float | None:
    """Kernel time to decompress and unpack ``initrd`` (ms), or None.

    ``initramfs_async=0`` makes the kernel unpack before going on, so the
    span from "Trying to unpack" to "Freeing initrd memory" is that work
    alone. The guest is stopped as soon as the second line is out.
    """
    spec = VmSpec(kernel=kernel, initrd=initrd, append="initramfs_async=0", net="none")
    try:
        with Vm(spec, log) as vm:
            vm.wait_for(UNPACK_END, timeout)
            lines = console_lines(vm.text())
    except TimeoutError:
        return None
    finally:
        log.unlink(missing_ok=True)
    start, end = stamp_of(lines, UNPACK_START), stamp_of(lines, UNPACK_END)
    return None if start is None or end is None else (end - start) * 1000


# What mosnet's processes have mapped once the real root runs: typed on the
# test root's shell (mostest.shell). The daemon and the proxy are forks of
# PID 1, so they map every library PID 1 had loaded by then.
_MAPS_CMD = (
    "for p in /proc/[0-9]*; do case \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" in "
    "@mosnet*) sed -n 's|^[^/]*\\(/[^ ]*\\).*$|BQ7-MAP \\1|p' $p/maps ;; esac; done "
    "| sort -u; echo BQ7-END; exit\n"
)


def mapped_files(initrd: Path, work: Path, timeout: float = RUN_TIMEOUT) -> list[str]:
    """Files mosnet's daemon and proxy have mapped after a DHCP boot of ``initrd``."""
    gw = Gateway(name=f"bq7-maps-{os.getpid()}", workdir=work / "gw-maps", net=NET)
    gw.start()
    try:
        spec = VmSpec(
            kernel=OUT / "vmlinuz", initrd=initrd, append=f"{APPEND} mostest.shell",
            disk=OUT / "testroot.img", net="tap:tap0", netns=gw.name,
        )  # fmt: skip
        with Vm(spec, work / "maps.log") as vm:
            vm.wait_for(r"^ROOT: shell", timeout)
            vm.send(_MAPS_CMD)
            vm.wait_for(r"^BQ7-END", 60)
            return parse_maps(vm.text())
    finally:
        gw.stop()
