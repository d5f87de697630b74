"""The shared runtime: logging, typed errors, atomic files, netlink sessions, names.

Owns what every other room and ``init/`` use: the logger (kmsg, console, escaping),
the error types and how input is shown in messages, atomic file replacement,
the stop flag loops sleep on, process titles, what sysfs says about an
interface, carrier notifications, the names of what mosnet creates, and the
one way to run a helper program (``children``: safe under PID 1's reaping).

Imports: none (the lowest room)
"""
