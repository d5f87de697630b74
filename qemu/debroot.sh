#!/bin/bash
# A real Debian 12 root for QEMU tests: debootstrap (minbase) with systemd,
# udev, systemd-networkd (enabled), NetworkManager and ifupdown (installed,
# disabled), and the test kernel's .deb installed with dpkg -i, so Debian's
# own initramfs-tools builds its initrd (MODULES=most: virtio, ext4).
#
# usage: qemu/debroot.sh OUTDIR
#   OUTDIR/root.img    ext4, label "debroot" (root=LABEL=debroot or /dev/vda)
#   OUTDIR/initrd.img  the initramfs-tools initrd Debian made for the kernel
#   OUTDIR/vmlinuz     that kernel (the one qemu/fetch-kernel.sh fetched)
#   stdout: the kernel release
#
# Caches: .cache/debroot/base (the debootstrap tree, keyed by the package
# list and suite) and .cache/debroot/img (the three files, keyed by the base,
# the kernel package and this script's hash). A warm run only copies.
#
# Test hooks inside the root (no login needed; console=ttyS0):
#   fw_cfg "opt/debroot/setup"  sh script, run as root by debroot-setup.service
#                               before network-pre.target (edit /etc here)
#   fw_cfg "opt/debroot/test"   sh script, run by debroot-test.service after
#                               multi-user.target; default: a short report
#   fw_cfg "opt/debroot/final"  sh script, run by systemd-shutdown right before
#                               power-off, after its final kill of processes
#   (QEMU: -fw_cfg name=opt/debroot/test,file=test.sh). Their output goes to
#   ttyS0 with "DEBROOT: " in front of every line; markers:
#   "DEBROOT: setup rc=N", "DEBROOT: test rc=N", "DEBROOT: final begin/end".
#   After the test, debroot-test.service powers off (systemctl poweroff)
#   unless the kernel command line has "debroot.stay". With debroot.stay,
#   ttyS0 also has a root autologin for interactive use; without it no getty
#   runs there: agetty's vhangup() of ttyS0 would cut the hooks' output.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: qemu/debroot.sh OUTDIR}
cache=$top/.cache/debroot
SUITE=bookworm
MIRROR=${MOSNET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=(
    systemd systemd-sysv udev dbus kmod iproute2 iputils-ping procps
    initramfs-tools linux-base zstd network-manager libpam-systemd ifupdown
)

mkdir -p "$cache" "$out"
exec 9>"$cache/.lock"
flock 9
log() { echo "debroot: [${SECONDS}s] $*" >&2; }

# The kernel build.sh fetched (out/vmlinuz); fetch-kernel.sh only when there is none.
if [ -f "$top/.cache/kernel/current/.ready" ]; then
    kver=$(cat "$top/.cache/kernel/current/.ready")
else
    kver=$("$top/qemu/fetch-kernel.sh")
fi
kdir=$(readlink -f "$top/.cache/kernel/current")
kdeb=$(ls "$kdir"/deb/*.deb)

# --- stage 1: debootstrap, cached as a directory tree ----------------------
base_want=$(printf '%s\n' "$SUITE" "$MIRROR" "${PACKAGES[@]}" | sha256sum | cut -c1-32)
if [ "$(cat "$cache/base.stamp" 2>/dev/null)" != "$base_want" ] || [ ! -d "$cache/base" ]; then
    log "debootstrap $SUITE (minbase + ${#PACKAGES[@]} packages)"
    rm -rf "$cache/base" "$cache/base.new" "$cache/base.stamp"
    debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        "$SUITE" "$cache/base.new" "$MIRROR" >&2
    rm -rf "$cache/base.new"/var/cache/apt/archives/*.deb "$cache/base.new"/var/lib/apt/lists/*_Packages
    mv "$cache/base.new" "$cache/base"
    echo "$base_want" > "$cache/base.stamp"
fi

# --- stage 2: kernel, configuration, hooks, ext4 image ---------------------
want=$( (echo "$base_want"; sha256sum "$kdeb" "$0" | cut -d' ' -f1) | sha256sum | cut -c1-32)
img=$cache/img
# OUTDIR keeps a stamp with the copy's size and mtime: an unchanged copy is
# not copied again (600 MB), one that a caller modified is.
out_stamp() { echo "$want $(stat -c '%s %Y' "$out/root.img" "$out/initrd.img" "$out/vmlinuz" 2>/dev/null | paste -sd' ')"; }
publish() {
    if [ "$(cat "$out/.debroot-stamp" 2>/dev/null)" != "$(out_stamp)" ]; then
        cp --sparse=always "$img/root.img" "$img/initrd.img" "$img/vmlinuz" "$out/"
        out_stamp > "$out/.debroot-stamp"
    fi
    cat "$img/kver"
}
if [ "$(cat "$img/stamp" 2>/dev/null)" = "$want" ] && [ -f "$img/root.img" ]; then
    publish
    exit 0
fi

work=$cache/work
cleanup() {
    for m in dev/pts dev sys proc; do
        mountpoint -q "$work/$m" 2>/dev/null && umount -l "$work/$m"
    done
    return 0
}
trap cleanup EXIT
cleanup
rm -rf "$work" "$img"
log "copying the base tree"
cp -a "$cache/base" "$work"
mount -t proc proc "$work/proc"
mount -t sysfs sys "$work/sys"
mount --bind /dev "$work/dev"
mount --bind /dev/pts "$work/dev/pts"
in_root() { LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$work" "$@"; }

log "dpkg -i $(basename "$kdeb") (initramfs-tools builds the initrd)"
cp "$kdeb" "$work/tmp/kernel.deb"
grep -q '^MODULES=most' "$work/etc/initramfs-tools/initramfs.conf" ||
    sed -i 's/^MODULES=.*/MODULES=most/' "$work/etc/initramfs-tools/initramfs.conf"
in_root dpkg -i --force-unsafe-io /tmp/kernel.deb >&2  # a throw-away tree: no fsync per file
rm -f "$work/tmp/kernel.deb"
listing=$(in_root lsinitramfs "/boot/initrd.img-$kver")
for m in virtio_net virtio_blk virtio_pci ext4; do
    grep -q "/$m\.ko" <<<"$listing" || { log "initrd lacks $m"; exit 1; }
done

log "configuring"
echo debroot > "$work/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 debroot\n' > "$work/etc/hosts"
printf 'LABEL=debroot / ext4 rw,errors=remount-ro 0 1\n' > "$work/etc/fstab"
in_root passwd -d root >/dev/null
in_root systemctl enable systemd-networkd.service >&2
in_root systemctl disable NetworkManager.service networking.service >&2 || true
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer >&2
mkdir -p "$work/etc/systemd/system/serial-getty@ttyS0.service.d"
cat > "$work/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'EOF'
# Only for interactive use: agetty hangs up ttyS0 when it starts, which cut
# the test hook's output in half once (its sed lost the terminal).
[Unit]
ConditionKernelCommandLine=debroot.stay
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I $TERM
EOF

cat > "$work/usr/local/sbin/debroot-hook" <<'EOF'
#!/bin/sh
# debroot-hook setup|test: run the fw_cfg script of that phase (see qemu/debroot.sh)
FW=/sys/firmware/qemu_fw_cfg/by_name/opt/debroot
phase=$1
out() { sed -u 's/^/DEBROOT: /' > /dev/ttyS0; }
mkdir -p /run/debroot
if [ "$phase" = setup ]; then
    modprobe qemu_fw_cfg 2>/dev/null
    for p in setup test final; do
        [ -r "$FW/$p/raw" ] && cat "$FW/$p/raw" > "/run/debroot/$p.sh"
    done
fi
if [ -f "/run/debroot/$phase.sh" ]; then
    sh "/run/debroot/$phase.sh" 2>&1 | out
    rc=$(cat /run/debroot/rc 2>/dev/null || echo 0)
elif [ "$phase" = test ]; then
    { echo "system $(systemctl is-system-running)"
      ip -br addr; ip route; ip -6 route
      systemctl --no-legend --failed
      ps -eo pid=,args= | grep ' @' | grep -v grep; } 2>&1 | out
    rc=0
fi
echo "$phase rc=${rc:-0}" | out
if [ "$phase" = test ] && ! grep -qw debroot.stay /proc/cmdline; then
    systemctl --no-block poweroff
fi
exit 0
EOF
chmod 0755 "$work/usr/local/sbin/debroot-hook"
# The final hook runs in systemd-shutdown after its last kill: what is still
# alive then (pid and command line) is what the shutdown spared.
mkdir -p "$work/usr/lib/systemd/system-shutdown"
cat > "$work/usr/lib/systemd/system-shutdown/debroot-final" <<'EOF'
#!/bin/sh
exec > /dev/ttyS0 2>&1
echo "DEBROOT: final begin $1"
if [ -f /run/debroot/final.sh ]; then
    sh /run/debroot/final.sh "$1" 2>&1 | sed 's/^/DEBROOT: /'
else
    for d in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)
        [ -n "$cmd" ] && echo "DEBROOT: alive ${d#/proc/} $cmd"
    done
fi
echo "DEBROOT: final end"
EOF
chmod 0755 "$work/usr/lib/systemd/system-shutdown/debroot-final"
cat > "$work/etc/systemd/system/debroot-setup.service" <<'EOF'
[Unit]
Description=debroot test hook: setup script from fw_cfg
DefaultDependencies=no
After=systemd-remount-fs.service local-fs.target
Before=network-pre.target systemd-networkd.service NetworkManager.service networking.service sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/debroot-hook setup

[Install]
WantedBy=sysinit.target
EOF
cat > "$work/etc/systemd/system/debroot-test.service" <<'EOF'
[Unit]
Description=debroot test hook: test script from fw_cfg, then power off
After=multi-user.target network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/debroot-hook test

[Install]
WantedBy=multi-user.target
EOF
in_root systemctl enable debroot-setup.service debroot-test.service >&2

log "trimming"
rm -rf "$work"/usr/share/doc/* "$work"/usr/share/man/* "$work"/usr/share/info/* \
    "$work"/var/cache/apt/*.bin "$work"/var/lib/apt/lists/* "$work"/var/log/*.log
find "$work/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'C.*' -exec rm -rf {} + 2>/dev/null || true
cleanup
trap - EXIT

log "ext4 image"
mkdir -p "$img.new"
cp "$work/boot/vmlinuz-$kver" "$img.new/vmlinuz"
cp "$work/boot/initrd.img-$kver" "$img.new/initrd.img"
truncate -s 1536M "$img.new/root.img"
mkfs.ext4 -q -F -L debroot -E root_owner=0:0 -d "$work" "$img.new/root.img"
echo "$kver" > "$img.new/kver"
echo "$want" > "$img.new/stamp"
rm -rf "$work"
mv "$img.new" "$img"
log "done"
publish
