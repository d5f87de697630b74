"""The busybox reference initramfs: a ``sh`` script as ``/init`` doing mosnet-init's job.

Mount the API file systems, [``insmod`` the drivers], ``udhcpc`` on eth0,
mount the root, ``switch_root``. The native bench runs it in a namespace,
the QEMU bench boots it (with the virtio/ext4 modules).
"""

from __future__ import annotations

from collections.abc import Sequence

BUSYBOX = "/bin/busybox"
BUSYBOX_INIT = """#!/bin/busybox sh
# The reference: the same job as mosnet-init with busybox alone.
export PATH=/bin
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
{drivers}ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /udhcpc.sh -n -t 10 -T 1{arp_check} || echo "BN7 fail udhcpc"
{wait_root}mount {mount_opts}{root} /sysroot
for d in dev proc sys run; do mount --move /$d /sysroot/$d; done
exec switch_root /sysroot /sbin/init
"""
# A real machine (bench/qemu/boot.py): drivers from /lib/modules, in load
# order, then the root device may take a moment to appear (up to 5 s).
_INSMOD = "insmod /lib/modules/{name}.ko\n"
_WAIT_ROOT = "i=0; while [ ! -b {root} ] && [ $i -lt 500 ]; do usleep 10000; i=$((i + 1)); done\n"
UDHCPC_SCRIPT = """#!/bin/busybox sh
case "$1" in
deconfig) ip -4 addr flush dev "$interface" ;;
bound|renew)
  ip addr add "$ip/$mask" dev "$interface"
  for r in $router; do ip route add default via "$r" dev "$interface"; break; done
  : > /run/resolv.conf
  for d in $dns; do echo "nameserver $d" >> /run/resolv.conf; done ;;
esac
"""
BUSYBOX_APPLETS = ("sh", "mount", "ip", "udhcpc", "switch_root", "echo")
MODULE_APPLETS = ("insmod", "usleep")


def busybox_init(
    root: str, *, modules: Sequence[str] = (), rw: bool = False, fstype: str = "", arp_ms: int = 0
) -> str:
    """The reference's /init: mount, [insmod], udhcpc, mount the root, switch_root.

    ``modules`` (names, dependencies first) are loaded from ``/lib/modules``
    with ``insmod``; then the script waits for ``root`` to appear.
    ``arp_ms`` makes udhcpc check the offered address by ARP first (``-a``),
    the duplicate-address check mosnet does before it uses a lease.
    """
    opts = f"-o {'rw' if rw else 'ro'} " + (f"-t {fstype} " if fstype else "")
    return BUSYBOX_INIT.format(
        root=root,
        drivers="".join(_INSMOD.format(name=m) for m in modules),
        wait_root=_WAIT_ROOT.format(root=root) if modules else "",
        mount_opts=opts,
        arp_check=f" -a{arp_ms}" if arp_ms else "",
    )


def busybox_applets(modules: bool = False) -> tuple[str, ...]:
    """The applet links the reference needs (``insmod`` etc. with modules)."""
    return BUSYBOX_APPLETS + (MODULE_APPLETS if modules else ())
