"""The plan: config plus discovered NICs to ordered actions, and applying them.

Owns the action types, both bridge backends (Linux bridge, Open vSwitch) as
actions, a DHCPv4 lease as actions, and the executor with rollback (netlink,
OVS, nft). A plan holds every change a boot makes: the MAC NAT table, the
bridge and its ports, the addresses, the lease and the firewall.

Imports: base, config, dhcp4, uplink, state, nft, macnat, ovs
"""
