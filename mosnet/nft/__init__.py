"""nftables: ``mosfirewall=``/``mosnat=`` rendered and applied in mosnet's own tables.

Imports: base, config
"""
