"""QEMU boot: full TCG boots of the same kernel and root, only the initramfs
changing; the guest's uptime when the real init starts, marked by the
kernel's own TOMOYO line, with mosnet's phases from its console. Against the
busybox ``sh`` + udhcpc image (``common.busybox_ref``, with the virtio and ext4
modules) and dracut's network-legacy image (``common.dracut_ref``).
"""
