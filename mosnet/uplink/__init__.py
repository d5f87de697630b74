"""Which NIC is the uplink: discovery, the gateway probe, the DHCP offer race.

Owns listing and bringing up the physical NICs, asking on all of them at once
who answers (ARP/NS for the static gateway, DISCOVER for DHCP), and the NIC
list files ``mosnet plan --links`` reads.

Imports: base, config, l2, dhcp4
"""
