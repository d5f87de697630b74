"""Build time: ``./build.sh`` in a throw-away clone, cold (empty caches), warm
with nothing changed and warm after a one-line code change, timed per
build step; against the targets (15 min cold, 2 min after a change) and
dracut building its network initramfs for the same kernel
(``common.dracut_ref``).
"""
