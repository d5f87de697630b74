"""The network phase of a boot: static or DHCP mode, from config to a running network.

``phase.bring_up(cfg)`` is the one entry point: it runs the static or the
DHCP strategy (``static``, ``dhcpmode``), then the firewall, and returns one
frozen :class:`~mosnet.netphase.outcome.Outcome` (plan as it ran, applied
actions, uplink, port, lease, IPv6, proxy spec, firewall, errors) that PID 1
records in state.json and hands to the daemon whole.

Imports: base, config, l2, dhcp4, uplink, state, ipv6, nft, proxy, macnat, ovs, topology, daemon
"""
