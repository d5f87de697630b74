"""Multi-NIC probe: how long ``mosnet.uplink.offers.probe`` takes to find the
one served NIC among 1, 4 or 8 veths (all DISCOVERed at once) and then the
lease, against one NIC alone (the target: 8 NICs <= 1.2 x one) and against
the model of the Rust original, which probed the NICs one after another.
"""
