"""What several benchmarks share: sample statistics and text tables (``stats``),
network namespaces with veths and dnsmasq (``netlab``), the two reference
initramfs, busybox's ``sh`` + udhcpc (``busybox_ref``) and dracut's
network-legacy image (``dracut_ref``), and the results chart drawn with
matplotlib (``chart``, the only module that needs it). Nothing here is a
benchmark of its own.
"""
