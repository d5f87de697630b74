#!/bin/busybox sh
# /init of the switch guest (qemu/switchvm.py): the far side of a tagged link
# or of a bond, with the kernel features the test host lacks (8021q, bonding).
# Loads the modules listed in /etc/modules, sources the case's /etc/switch.sh
# (built from the helpers below), prints "SWITCH: ready", then runs the lines
# typed on the console (no echo, no prompt): the host types "cmd; echo marker".
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# Debian's static busybox runs its own applets before PATH: a function wins.
ip() { /usr/sbin/ip "$@"; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /run /var/lib/misc
while read -r mod; do
    args=
    [ "$mod" = bonding ] && args=max_bonds=0  # no implicit bond0: "ip link add" makes it
    insmod "/lib/modules/$mod.ko" $args || echo "SWITCH: insmod $mod failed"
done < /etc/modules
ip link set lo up
# Strong-host replies only: no ARP answer or IP delivery for an address that
# lives on another interface (the VLAN's address, seen from its parent).
for k in all/arp_ignore all/rp_filter default/rp_filter; do echo 1 > "/proc/sys/net/ipv4/conf/$k"; done
GW4=10.77.0.1
GW6=fd00:77::1

# bond NAME MODE PORT... : 802.3ad with fast LACP, as the test guest's bond
bond() {
    name=$1 mode=$2; shift 2
    ip link add "$name" type bond mode "$mode" miimon 100 lacp_rate fast \
        xmit_hash_policy layer3+4 || echo "SWITCH: bond $name FAILED"
    for port in "$@"; do
        ip link set "$port" down
        ip link set "$port" master "$name" || echo "SWITCH: enslave $port FAILED"
    done
    ip link set "$name" up
}
# bridge NAME PORT... : a plain bridge, STP off, no VLAN filtering
bridge() {
    name=$1; shift
    ip link add "$name" type bridge stp_state 0 forward_delay 0
    for port in "$@"; do ip link set "$port" master "$name" up; done
    ip link set "$name" up
}
# vlan PARENT VID : PARENT.VID, and untagged frames dropped as a switch port
# in tagged-only mode would: PARENT is the one port of bridge untag-PARENT
# (tagged frames go to the VLAN before the bridge sees them), which counts
# them (rx_packets) and has no ARP, no IPv6 and no address to answer with.
vlan() {
    ip link add "untag-$1" type bridge stp_state 0 forward_delay 0
    ip link set "untag-$1" arp off
    echo 1 > "/proc/sys/net/ipv6/conf/untag-$1/disable_ipv6"
    ip link set "untag-$1" up
    ip link set "$1" master "untag-$1" up
    ip link add link "$1" name "$1.$2" type vlan id "$2" || echo "SWITCH: vlan $1.$2 FAILED"
    ip link set "$1.$2" up
}
# gateway IFACE [DNSMASQ-ARGS...] : 10.77.0.1/24 + fd00:77::1/64 and DHCP on IFACE only
gateway() {
    iface=$1; shift
    ip link set "$iface" up
    ip addr add "$GW4/24" dev "$iface"
    ip addr add "$GW6/64" dev "$iface" nodad
    dnsmasq --conf-file=/dev/null --user=root --group=root --pid-file=/run/dnsmasq.pid \
        --bind-interfaces --interface="$iface" --except-interface=lo --no-ping \
        --dhcp-authoritative --no-resolv --no-hosts --listen-address="$GW4" \
        --dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,2m \
        --dhcp-option=option:router,"$GW4" --dhcp-option=option:dns-server,"$GW4" \
        --dhcp-leasefile=/tmp/leases --log-dhcp --log-facility=/tmp/dnsmasq.log "$@" \
        && echo "SWITCH: dnsmasq on $iface" || echo "SWITCH: dnsmasq on $iface FAILED"
}
[ -f /etc/switch.sh ] && . /etc/switch.sh
echo "SWITCH: ready"
stty -echo 2>/dev/null
while read -r line; do eval "$line"; done < /dev/console
