"""What mosnet tells the real system: state.json, status, resolv.conf, coexistence.

Owns ``/run/mosnet/state.json``, ``mosnet status``, the resolv.conf writer and
the files that keep networkd, NetworkManager and ifupdown off mosnet's links.

Imports: base, dhcp4
"""
