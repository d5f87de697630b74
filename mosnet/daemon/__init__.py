"""``@mosnet-daemon`` and ``@mosnet-watch``: lease keeping, supervision, following PID 1.

Imports: base, config, l2, dhcp4, ipv6, state, proxy, macnat, ovs, topology
"""
