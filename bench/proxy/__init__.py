"""Proxy rate: ARP requests and Neighbor Solicitations flooded at rising rates
(``flood.c``, compiled at bench time) at mosnet's proxy, lifted out of its
rate limits, and at its bare loop; loss, latency percentiles and CPU per
answer per step, against the kernel's own ``proxy_arp``/``proxy_ndp`` with
``proxy_delay=0`` (and its default delay) in the same namespaces.
"""
