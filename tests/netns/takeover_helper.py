"""PID 1's part for tests/netns/test_daemon_takeover.py, in the client namespace.

Usage: takeover_helper.py TOP RUN_DIR IFNAME T1. Gets a lease as PID 1 does
(acquire, apply, lease-<if>.json), forks the daemon with an ARP/NDP proxy on
the NIC, prints one JSON line and idles (holding the hand-over pipe, as PID 1
does) until SIGTERM. While ``RUN_DIR/crash-next-renewal`` exists, the
daemon's next renewal raises once: an uncaught exception in a running daemon.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from unittest import mock

sys.path.insert(0, sys.argv[1])

from mosnet.base import (
    log,
    netif,  # noqa: E402  (after the path is set)
)
from mosnet.daemon import mainloop
from mosnet.daemon.leasekeeper import LeaseKeeper  # noqa: E402
from mosnet.daemon.proxyproc import ProxySpec  # noqa: E402
from mosnet.dhcp4 import ClientConfig, Config, publish  # noqa: E402
from mosnet.dhcp4.client import Client  # noqa: E402
from mosnet.dhcp4.lease import Lease  # noqa: E402
from mosnet.proxy.answers import ProxyConfig  # noqa: E402
from mosnet.topology.netapply import apply_lease  # noqa: E402

run_dir, ifname, t1 = sys.argv[2], sys.argv[3], float(sys.argv[4])
FLAG = os.path.join(run_dir, "crash-next-renewal")
_renew = LeaseKeeper.on_renew


def on_renew(self: LeaseKeeper, lease: Lease) -> None:
    if os.path.exists(FLAG):
        os.unlink(FLAG)
        raise RuntimeError("injected failure in a renewal")
    _renew(self, lease)


def main() -> None:
    log.setup(level=logging.INFO)
    log.add_file(os.path.join(run_dir, "boot.log"))
    mock.patch.object(LeaseKeeper, "on_renew", on_renew).start()  # for this process's life
    config = ClientConfig(machine=Config(renew_after=t1, min_retransmit=1.0), probe_count=0)
    client = Client(ifname, config=config)
    lease = client.acquire(20.0)
    assert lease is not None, "no lease"
    apply_lease(lease, ifname, client.clock())
    publish.write_lease(lease, ifname, run_dir)
    mac = netif.interface_mac(ifname)
    cfg = ProxyConfig(mac, frozenset({lease.address}), frozenset(), frozenset(lease.routers))
    duties = mainloop.Duties(client=client, proxy=ProxySpec(ifname, cfg))
    handle = mainloop.spawn(duties, run_dir=run_dir)
    print(json.dumps({"daemon": handle.pid, "address": str(lease.address)}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:  # reap the first daemon when it is killed, as PID 1 would
        time.sleep(0.2)
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pass


if __name__ == "__main__":
    main()
