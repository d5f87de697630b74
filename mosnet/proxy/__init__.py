"""The ARP/NDP proxy: which request gets which answer, and its socket loop.

Imports: base, l2
"""
