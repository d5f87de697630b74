"""Boot critical path, native: ``mosnet-init`` run as PID 1 of fresh namespaces
from an unpacked copy of the image, timed from its exec to the exec of the
real init on a read-only loop root, with its phases read off ``/dev/kmsg``;
against the busybox ``sh`` + udhcpc ``/init`` (``common.busybox_ref``) doing
the same job on the same LAN. The C helpers (the stamp, the ``/proc/cmdline``
redirect and its check) are compiled from this folder at bench time.
"""
