"""mosnet's own DHCPv6 client (RFC 8415): codec, state machine, transport, driver, apply.

Boot (PID 1)::

    c = Client("mos")
    lease = c.acquire(timeout=10.0)      # stateful IA_NA, or c.inform() for DNS only
    if lease:
        apply.apply_lease6(lease, "mos", c.clock())
        apply.write_lease(lease, "mos", "/run/mosnet")

Daemon: ``c.run_forever(on_bind, on_expire, should_stop)``. ``mosnet.ipv6.autoconf``
wraps all of this together with the RA listener.

Imports: base, l2
"""

from mosnet.dhcp6.client import Client, ClientConfig
from mosnet.dhcp6.codec import DecodeError
from mosnet.dhcp6.fsm import Config, Machine, State
from mosnet.dhcp6.lease import Info, Lease6

__all__ = ["Client", "ClientConfig", "Config", "DecodeError", "Info", "Lease6", "Machine", "State"]
