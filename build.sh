#!/bin/bash
# One command from a fresh Debian 12 machine (root, Python >= 3.11) to out/:
#   out/mosnet-initramfs.img      compressed newc cpio with mosnet-init as PID 1 (no OVS)
#   out/mosnet-ovs.img            Open vSwitch add-on cpio (Debian packages, fetched with
#                                 apt-get download); the kernel unpacks it on top of the base
#   out/mosnet-initramfs-ovs.img  the two concatenated: the image with OVS
#   out/mosnet-netroot.img        netboot-root add-on: NFS client modules and zstd (NFS
#                                 roots, mosroot=...tar.zst); squashfs roots need no add-on
#   out/mosnet-initramfs-netroot.img  base + netroot add-on
#   out/vmlinuz                   the kernel whose modules the image carries (--kernel)
#   out/image-report.json, out/ovs-report.json, out/netroot-report.json   bytes per part
# Caches live under .cache/ (ccache, Nuitka, kernel and OVS packages), so a
# second run with nothing changed only checks stamps.
#
# usage: ./build.sh [--kernel SOURCE] [--compress zstd|gzip] [--no-deps] [--test-deps]
#                   [--no-ovs] [--append] [--cmdline LINE]
#   --kernel     the kernel to build for (default: MOSNET_KERNEL_PKG, else Debian's
#                linux-image-amd64 of this release): a package name (NAME@trixie: from
#                Debian 13's lists, kept privately under .cache/apt), a local
#                linux-image-*.deb (Ubuntu's: with its linux-modules-*.deb beside it),
#                "installed" (the running kernel), a release under /lib/modules, or
#                a <root>/lib/modules/<release> tree with <root>/boot/vmlinuz-<release>
#   --test-deps  also install what tests/run-all.sh needs (QEMU, dnsmasq, mkfs tools, matplotlib)
#   --demo-deps  also install what qemu/demo.sh boots with (QEMU)
#   --no-ovs     skip the OVS add-on (a stale one in out/ is removed)
#   --append     also out/mosnet-append.img for chain mode: cat it after a distro
#                initramfs, boot with rdinit=/mosnet-init mosinit=chain
#   --cmdline    default kernel parameters baked into the image (/etc/mosnet/cmdline);
#                the real kernel line overrides them parameter by parameter
#   --out DIR    write the images there instead of out/ (one directory per kernel)
#   --hostonly   only the drivers of this machine's hardware (its /sys modaliases and
#                loaded modules) plus what mosnet always needs, as dracut --hostonly;
#                the build report gives the bytes saved
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
start_dir=$PWD
cd "$top"

compress=zstd
install_deps=1
test_deps=0
demo_deps=0
with_ovs=1
baked_cmdline=
append=0
kernel_src=
out=out
hostonly=0
while [ $# -gt 0 ]; do
    case $1 in
        --compress) compress=$2; shift 2 ;;
        --no-deps) install_deps=0; shift ;;
        --test-deps) test_deps=1; shift ;;
        --demo-deps) demo_deps=1; shift ;;
        --no-ovs) with_ovs=0; shift ;;
        --cmdline) baked_cmdline=$2; shift 2 ;;
        --append) append=1; shift ;;
        --kernel) kernel_src=$2; shift 2
                  # a relative path means the caller's directory, not the checkout
                  case $kernel_src in /*) ;; *) [ ! -e "$start_dir/$kernel_src" ] || kernel_src=$start_dir/$kernel_src ;; esac ;;
        --hostonly) hostonly=1; shift ;;
        --out) out=$2; shift 2
               case $out in /*) ;; *) out=$start_dir/$out ;; esac ;;
        -h|--help) sed -n '2,/^set -e/{/^set -e/!p}' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

say() { printf '\033[1m== %s\033[0m (%ss)\n' "$*" "$SECONDS"; }

# Debian packages the build needs; each is checked by a file it provides.
BUILD_DEBS=(
    "gcc:/usr/bin/gcc" "libc6-dev:/usr/lib/x86_64-linux-gnu/libc.a" "ccache:/usr/bin/ccache"
    "patchelf:/usr/bin/patchelf" "busybox-static:/bin/busybox" "kmod:/sbin/depmod"
    "zstd:/usr/bin/zstd" "cpio:/usr/bin/cpio" "e2fsprogs:/sbin/mkfs.ext4"
    "nftables:/usr/sbin/nft"
)

# What qemu/demo.sh and python -m qemu.boot use besides the build.
DEMO_DEBS=("qemu-system-x86:/usr/bin/qemu-system-x86_64")

# What the three test tiers use besides the build: QEMU TCG, real DHCP servers,
# filesystem and partition tools for the root-device tests.
TEST_DEBS=(
    "qemu-system-x86:/usr/bin/qemu-system-x86_64" "dnsmasq-base:/usr/sbin/dnsmasq"
    "iproute2:/sbin/ip" "util-linux:/usr/bin/unshare"
    "fdisk:/sbin/sfdisk" "dosfstools:/sbin/mkfs.vfat" "xfsprogs:/sbin/mkfs.xfs"
    "squashfs-tools:/usr/bin/mksquashfs" "xz-utils:/usr/bin/xz"
    "kea-dhcp4-server:/usr/sbin/kea-dhcp4"
    "openvswitch-switch:/usr/bin/ovs-vsctl" "debootstrap:/usr/sbin/debootstrap"
    # the boot recipes in docs/, each booted by the real loader
    "ipxe-qemu:/usr/lib/ipxe/qemu/efi-virtio.rom" "pxelinux:/usr/lib/PXELINUX/lpxelinux.0"
    "syslinux-common:/usr/lib/syslinux/modules/bios/ldlinux.c32"
    "grub-pc-bin:/usr/lib/grub/i386-pc/boot.img"
    "nfs-ganesha:/usr/bin/ganesha.nfsd" "nfs-ganesha-vfs:/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so"
)

install_debs() {
    local missing=() entry
    for entry in "$@"; do
        [ -e "${entry#*:}" ] || missing+=("${entry%%:*}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "apt-get install ${missing[*]}"
    [ "$(id -u)" = 0 ] || { echo "build.sh: need root to install ${missing[*]}" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }
}

pick_python() {
    local py
    for py in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$py" ] && command -v "$py" >/dev/null || continue
        "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { command -v "$py"; return; }
    done
    echo "build.sh: need Python >= 3.11" >&2; exit 1
}

setup_venv() {
    local py stamp want extras=dev
    # The unit tests draw the bench chart with matplotlib, pyproject's bench-only
    # extra; a venv that has it keeps it.
    if [ $test_deps = 1 ] || grep -qs ' dev,bench$' .venv/.mosnet-deps; then extras=dev,bench; fi
    py=$(pick_python)
    # Debian's python3 lacks venv, headers and the static libpython Nuitka links.
    if ! "$py" -c 'import ensurepip, venv' 2>/dev/null || [ ! -e "$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then
        install_debs "python3-venv:/nonexistent" "python3-dev:/nonexistent"
    fi
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    want="$(sha256sum pyproject.toml | cut -c1-16) $extras"
    stamp=.venv/.mosnet-deps
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "pip install -e .[$extras]"
        .venv/bin/pip install -q --upgrade pip
        .venv/bin/pip install -q -e ".[$extras]"
        echo "$want" > "$stamp"
    fi
}

build_preinit() {
    mkdir -p .cache/preinit
    if [ ! -x .cache/preinit/mosnet-init ] || [ initramfs/preinit.c -nt .cache/preinit/mosnet-init ]; then
        say "pre-init (static C)"
        gcc -static -Os -s -Wall -Wextra -Werror -o .cache/preinit/mosnet-init initramfs/preinit.c
    fi
}

# Only mosnet's own code is compiled to C; third-party packages stay bytecode
# inside the binary, which keeps a cold build to a few minutes on 2 cores.
NUITKA_FLAGS=(
    --mode=standalone --output-dir=.cache/nuitka --output-filename=mosnet-init.bin
    --noinclude-custom-mode=pyroute2:bytecode
    --nofollow-import-to=tkinter --nofollow-import-to=pydoc --nofollow-import-to=doctest
    --nofollow-import-to=scapy --nofollow-import-to=elftools --nofollow-import-to=initramfs
    --nofollow-import-to=pytest --nofollow-import-to=hypothesis --nofollow-import-to=IPython
    # what pyroute2 and the stdlib would pull in but mosnet never runs (see the
    # package config): NDB's sqlite3, TLS, decimal, XML, compressors
    --user-package-configuration-file=initramfs/nuitka-package.config.yml
    --nofollow-import-to=pyroute2.ndb --nofollow-import-to=pyroute2.ipdb
    --nofollow-import-to=pyroute2.nftables --nofollow-import-to=pyroute2.plan9
    --nofollow-import-to=pyroute2.ipvs --nofollow-import-to=pyroute2.iwutil
    --nofollow-import-to=pyroute2.wiset --nofollow-import-to=pyroute2.wirouting
    --nofollow-import-to=pyroute2.ipset --nofollow-import-to=pyroute2.conntrack
    --nofollow-import-to=pyroute2.devlink --nofollow-import-to=pyroute2.ethtool
    --nofollow-import-to=pyroute2.dhcp --nofollow-import-to=pyroute2.nslink
    --nofollow-import-to=pyroute2.fixtures --nofollow-import-to=pyroute2.decoder
    --nofollow-import-to=pyroute2.arp --nofollow-import-to=pyroute2.bsd
    --nofollow-import-to=pyroute2.inotify --nofollow-import-to=pyroute2.minimal
    --nofollow-import-to=pyroute2.netlink.nl80211 --nofollow-import-to=pyroute2.netlink.diag
    --nofollow-import-to=pyroute2.netlink.taskstats --nofollow-import-to=pyroute2.netlink.event
    --nofollow-import-to=pyroute2.netlink.connector --nofollow-import-to=pyroute2.netlink.ipq
    --nofollow-import-to=pyroute2.netlink.uevent --nofollow-import-to=pyroute2.netlink.devlink
    --nofollow-import-to=sqlite3 --nofollow-import-to=ssl --nofollow-import-to=_ssl
    --nofollow-import-to=_hashlib --nofollow-import-to=decimal --nofollow-import-to=_decimal
    --nofollow-import-to=unicodedata --nofollow-import-to=pyexpat --nofollow-import-to=xml
    --nofollow-import-to=lzma --nofollow-import-to=bz2
    --python-flag=no_site --python-flag=no_warnings
    --jobs=2 --lto=no --assume-yes-for-downloads --quiet
)

build_nuitka() {
    local want stamp=.cache/nuitka/.stamp
    want=$( (printf '%s\n' "${NUITKA_FLAGS[@]}"; .venv/bin/python -m nuitka --version 2>/dev/null | sed -n 1p;
             find init mosnet -name '*.py' -print0 | sort -z | xargs -0 sha256sum;
             sha256sum initramfs/nuitka-package.config.yml) | sha256sum | cut -c1-32)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x .cache/nuitka/__main__.dist/mosnet-init.bin ]; then
        return 0
    fi
    say "Nuitka standalone build of init/"
    export CCACHE_DIR=$top/.cache/ccache NUITKA_CACHE_DIR=$top/.cache/nuitka-cache
    .venv/bin/python -m nuitka "${NUITKA_FLAGS[@]}" init/__main__.py
    echo "$want" > "$stamp"
}

# --cmdline is checked by the boot-time parsers (python -m initramfs cmdline)
# before minutes go into Nuitka; the pack checks it again and stores it.
check_cmdline() {
    [ -n "$baked_cmdline" ] || return 0
    say "baked command line"
    .venv/bin/python -m initramfs cmdline "$baked_cmdline"
}

# The kernel tree of this output directory: out/ uses .cache/kernel/current
# (what the tests and qemu/debroot.sh read), another --out its own link.
case $out in
    out|./out|"$top/out") klink=.cache/kernel/current; klink_name=current ;;
    *) klink_name=out-$(printf '%s' "$out" | tr -c 'a-zA-Z0-9._-' '_')
       klink=.cache/kernel/$klink_name ;;
esac

# Which kernel tree the images were packed from (a package and an installed
# kernel may share a release).
kernel_id() { readlink -f "$klink"; cat "$klink/.origin" 2>/dev/null; }

# The image is reproducible, so identical inputs give identical bytes: skip
# the (zstd -19) pack when nothing that goes into it changed.
# The add-ons' own modules are not inputs of the base.
# --hostonly: the machine's hardware is an input of the image.
host_hardware() {
    cut -d' ' -f1 /proc/modules 2>/dev/null | sort
    find /sys/devices -name modalias -exec cat {} + 2>/dev/null | sort -u
}

pack_initramfs() {
    local kver=$1 epoch=$2 want stamp="$out/.image-stamp" py host_args=()
    [ $hostonly = 0 ] || host_args=(--hostonly)
    py=$(ls initramfs/*.py | grep -v -e '/addon\.py$' -e '/listing\.py$' -e '/netrootaddon\.py$')
    want=$( (echo "$kver $compress $epoch hostonly=$hostonly"; kernel_id; cat .cache/nuitka/.stamp;
             [ $hostonly = 0 ] || host_hardware;
             [ -z "$baked_cmdline" ] || printf 'cmdline %s\n' "$baked_cmdline";
             sha256sum .cache/preinit/mosnet-init /bin/busybox /usr/sbin/nft $py) |
            sha256sum | cut -c1-32)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -f "$out/mosnet-initramfs.img" ]; then
        say "initramfs unchanged"
        return 0
    fi
    say "initramfs ($compress)"
    SOURCE_DATE_EPOCH=$epoch .venv/bin/python -m initramfs build --out "$out/mosnet-initramfs.img" \
        --compress "$compress" --kernel-root "$klink/root" --kver "$kver" \
        --dist .cache/nuitka/__main__.dist --preinit .cache/preinit/mosnet-init \
        --busybox /bin/busybox --extra-elf /usr/sbin/nft \
        --report "$out/image-report.json" "${host_args[@]}" \
        ${baked_cmdline:+--cmdline "$baked_cmdline"}
    echo "$want" > "$stamp"
}

# Chain mode (initramfs/append.py): /mosnet-init plus /usr/lib/mosnet with
# private libraries and network-stack modules, nothing a distro image has.
pack_append() {
    local kver=$1 epoch=$2 want stamp="$out/.append-stamp"
    want=$( (echo "$kver $compress $epoch"; kernel_id; cat .cache/nuitka/.stamp;
             sha256sum .cache/preinit/mosnet-init /usr/sbin/nft initramfs/*.py) |
            sha256sum | cut -c1-32)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -f "$out/mosnet-append.img" ]; then
        say "append image unchanged"
        return 0
    fi
    say "append image for chain mode ($compress)"
    SOURCE_DATE_EPOCH=$epoch .venv/bin/python -m initramfs append --out "$out/mosnet-append.img" \
        --compress "$compress" --kernel-root "$klink/root" --kver "$kver" \
        --dist .cache/nuitka/__main__.dist --preinit .cache/preinit/mosnet-init \
        --extra-elf /usr/sbin/nft --report "$out/append-report.json"
    echo "$want" > "$stamp"
}

# Netboot roots' extras as a second cpio (initramfs/netrootaddon.py): the NFS
# client modules and zstd for mosroot=...tar.zst, 1.8 MB the default image
# does without. Its stamp covers the base image, zstd and the builder.
NETROOT_OUT=("$out/mosnet-netroot.img" "$out/mosnet-initramfs-netroot.img" "$out/netroot-report.json")
pack_netroot() {
    local kver=$1 epoch=$2 want stamp="$out/.netroot-stamp"
    want=$( (echo "$kver $compress $epoch"; kernel_id; sha256sum "$out/mosnet-initramfs.img" /usr/bin/zstd initramfs/*.py) |
            sha256sum | cut -c1-32)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -f "${NETROOT_OUT[0]}" ] && [ -f "${NETROOT_OUT[1]}" ]; then
        say "netroot add-on unchanged"
        return 0
    fi
    say "netroot add-on ($compress)"
    SOURCE_DATE_EPOCH=$epoch .venv/bin/python -m initramfs netroot --base "$out/mosnet-initramfs.img" \
        --kernel-root "$klink/root" --kver "$kver" --out "${NETROOT_OUT[0]}" \
        --combined "${NETROOT_OUT[1]}" --compress "$compress" --report "${NETROOT_OUT[2]}"
    echo "$want" > "$stamp"
}

# Open vSwitch as a second cpio (initramfs/addon.py) holding only what the
# base lacks; its stamp covers the base image itself, the fetched packages
# and versions (.cache/ovs/packages.txt) and the builder.
OVS_OUT=("$out/mosnet-ovs.img" "$out/mosnet-initramfs-ovs.img" "$out/ovs-report.json")
ovs_want() {
    (echo "$1 $compress"; cat .cache/ovs/packages.txt 2>/dev/null;
     sha256sum "$out/mosnet-initramfs.img" initramfs/*.py) | sha256sum | cut -c1-32
}

pack_ovs() {
    local epoch=$1 root want stamp="$out/.ovs-stamp"
    root=$(initramfs/fetch-ovs.sh)
    want=$(ovs_want "$epoch")
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -f "${OVS_OUT[0]}" ] && [ -f "${OVS_OUT[1]}" ]; then
        say "OVS add-on unchanged"
        return 0
    fi
    say "OVS add-on ($compress)"
    SOURCE_DATE_EPOCH=$epoch .venv/bin/python -m initramfs ovs --root "$root" \
        --base "$out/mosnet-initramfs.img" --out "${OVS_OUT[0]}" --combined "${OVS_OUT[1]}" \
        --compress "$compress" --report "${OVS_OUT[2]}" --packages .cache/ovs/packages.txt
    echo "$want" > "$stamp"
}

# --no-ovs keeps an add-on that still matches the base, never a stale one.
drop_stale_ovs() {
    [ "$(cat "$out/.ovs-stamp" 2>/dev/null)" = "$(ovs_want "$1")" ] && return 0
    rm -f "${OVS_OUT[@]}" "$out/.ovs-stamp"
}

main() {
    if [ $install_deps = 1 ]; then
        install_debs "${BUILD_DEBS[@]}"
        [ $test_deps = 0 ] || install_debs "${TEST_DEBS[@]}"
        [ $demo_deps = 0 ] || install_debs "${DEMO_DEBS[@]}"
    fi
    setup_venv
    check_cmdline
    say "kernel ${kernel_src:-${MOSNET_KERNEL_PKG:-linux-image-amd64}}"
    kver=$(.venv/bin/python -m initramfs kernel --link "$klink_name" ${kernel_src:+"$kernel_src"})
    build_preinit
    build_nuitka
    mkdir -p "$out"
    install -m 0644 "$klink/root/boot/vmlinuz-$kver" "$out/vmlinuz"
    epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
    pack_initramfs "$kver" "$epoch"
    pack_netroot "$kver" "$epoch"
    [ $append = 0 ] || pack_append "$kver" "$epoch"
    if [ $with_ovs = 1 ]; then
        pack_ovs "$epoch"
        say "done: $out/mosnet-initramfs.img $out/mosnet-initramfs-ovs.img $out/vmlinuz"
    else
        drop_stale_ovs "$epoch"
        say "done: $out/mosnet-initramfs.img $out/vmlinuz (no OVS add-on)"
    fi
}

main
