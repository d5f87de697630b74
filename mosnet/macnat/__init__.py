"""MAC NAT: guests' frames leave with the NIC's MAC (Linux bridge: nftables, NDP relay).

Owns the ``table bridge mosnet-macnat``, the guests learned from their frames
and the user-space NDP relay of the Linux-bridge backend.

Imports: base, config, l2, nft, proxy
"""
