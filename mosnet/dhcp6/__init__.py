"""mosnet's own DHCPv6 client (RFC 8415): codec, state machine, transport, driver, apply.

Boot (PID 1)::

    c = Client("mos")
    lease = c.acquire(timeout=10.0)      # stateful IA_NA, or c.inform() for DNS only
    if lease: apply.apply(lease, "mos", c.clock()); apply.write_lease(lease, "mos", "/run/mosnet")

Daemon: ``c.run_forever(on_bind, on_expire, should_stop)``. ``mosnet.ipv6``
wraps all of this together with the RA listener.
"""

from mosnet.dhcp6.client import Client, ClientConfig
from mosnet.dhcp6.codec import DecodeError
from mosnet.dhcp6.fsm import Config, Info, Lease6, Machine, State

__all__ = ["Client", "ClientConfig", "Config", "DecodeError", "Info", "Lease6", "Machine", "State"]
