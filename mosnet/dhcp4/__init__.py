"""mosnet's own DHCPv4 client: codec, state machine, transport, driver, apply.

Boot (PID 1)::

    c = Client("eth0")
    lease = c.acquire(timeout=10.0)
    if lease: apply.apply(lease, "eth0", c.clock()); apply.write_lease(lease, "eth0", "/run/mosnet")

Daemon: ``c.run_forever(on_bind, on_expire, should_stop)``.
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
