"""Daemon footprint: after switch_root in a QEMU guest, the memory (RSS, PSS),
threads and idle CPU and wake-ups per minute of mosnet's daemon and proxy,
on the plain Linux image and with Open vSwitch; against the targets (40 MB
of memory, 0.5 s of CPU per idle minute) and busybox's ``udhcpc`` (and OVS's
own daemons) on the same guest.
"""
