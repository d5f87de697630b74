"""Open vSwitch: its daemons, br-mosnet on it, the OpenFlow codec, rules and controller.

Imports: base, l2, state, proxy, macnat
"""
