"""Seeded mutation fuzzers, outside ``bench/run.py``: the DHCPv4 decoder,
lease builder and state machine (``dhcp4``) and the ``mosroot=`` HTTP client
against whatever a server sends (``httpget``, its material in
``httpparts``). They measure cases per second and find bugs, with no
reference; tests/unit runs them for 100k cases each, the scripts for as many
as asked.
"""
