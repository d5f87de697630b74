"""mosnet's own DHCPv4 client: codec, state machine, transport, driver, lease record.

Boot (PID 1)::

    c = Client("eth0")
    lease = c.acquire(timeout=10.0)
    if lease: LeaseKeeper(c, run_dir).on_bind(lease)   # mosnet.daemon.leasekeeper

Daemon: ``c.run_forever(on_bind, on_expire, should_stop)``. The lease goes into
the kernel as plan actions (``mosnet.topology.lease``), not from here.

Imports: base, l2
"""

from mosnet.dhcp4.client import Client, ClientConfig
from mosnet.dhcp4.codec import DecodeError
from mosnet.dhcp4.fsm import Config, Machine, State
from mosnet.dhcp4.lease import Lease, LeaseError

__all__ = [
    "Client",
    "ClientConfig",
    "Config",
    "DecodeError",
    "Lease",
    "LeaseError",
    "Machine",
    "State",
]
