"""Link-layer frames and packet sockets: Ethernet, ARP, IPv6 neighbour discovery.

Owns the pure frame codecs (``frames``: Ethernet and ARP; ``nd``: IPv6 and
NS/NA), the AF_PACKET sockets (``packet``) and the classic BPF programs'
encoding and attaching (``bpf``), the carrier notifications of a NIC
(``linkwatch``), and the announcements (gratuitous ARP, unsolicited NA) sent
when an address appears.

Imports: base
"""
