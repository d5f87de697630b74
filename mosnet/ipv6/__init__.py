"""IPv6 on the DHCP port: router advertisements, SLAAC, DHCPv6 when asked, DNS.

Imports: base, l2, dhcp6, state
"""
