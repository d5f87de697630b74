"""Image size: the shipped images and add-ons split into their compressed
streams and newc members, sized by part and by candidate cut (each
recompressed with the build's own zstd), what a DHCP boot maps, Nuitka's
bytecode inside ``mosnet-init.bin`` and the guest's unpack time per
compressor; against the targets (15 MB default, 25 MB with OVS), the busybox
reference image and dracut's two images (``common.dracut_ref``).
"""
