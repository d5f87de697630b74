#!/bin/bash
# Build the demo/test root filesystem: an ext4 image holding static busybox
# and qemu/root/init as /sbin/init, plus nft, iproute2's ip and the OVS
# client tools. No loop mount needed (mkfs.ext4 -d).
# usage: qemu/mkroot.sh OUT.img [badinit]
# badinit: /sbin/init is qemu/root/init-missing-interp (a script whose
# interpreter the root lacks) and qemu/root/init is /etc/init, the next
# candidate (tests/qemu/test_boot_badinit.py).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/out/testroot.img}
variant=${2:-}
case $variant in ""|badinit) ;; *) echo "mkroot.sh: unknown variant '$variant'" >&2; exit 2 ;; esac
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,etc,proc,sys,dev,run,tmp,root,usr/bin,usr/sbin}
ln -s ../run "$stage/var/run" 2>/dev/null || { mkdir -p "$stage/var"; ln -s ../run "$stage/var/run"; }  # as on Debian: OVS tools find /run/openvswitch
cp /bin/busybox "$stage/bin/busybox"
for applet in $("$stage/bin/busybox" --list); do
    [ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
done
install -m 0755 "$top/qemu/root/init" "$stage/sbin/init"
if [ "$variant" = badinit ]; then
    mv "$stage/sbin/init" "$stage/etc/init"
    install -m 0755 "$top/qemu/root/init-missing-interp" "$stage/sbin/init"
fi
# nft and iproute2's ip (as ip.iproute2: busybox owns "ip") with their
# libraries, found by the project's own ELF resolver, so tests can list the
# firewall tables and build a container namespace in the real root.
if [ -x /usr/sbin/nft ] && [ -x /sbin/ip ]; then
    "$top/.venv/bin/python" - "$stage" <<'PY'
import os, shutil, sys
from pathlib import Path
from initramfs import elf
stage = Path(sys.argv[1])
ip = Path(os.path.realpath("/sbin/ip"))
closure = elf.resolve([Path("/usr/sbin/nft"), ip])
for f in closure.files:
    dst = stage / str(f.image_path).lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(f.source, dst)
for link in closure.links:
    dst = stage / str(link.image_path).lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        os.symlink(link.target, dst)
shutil.move(stage / str(ip).lstrip("/"), stage / "usr/sbin/ip.iproute2")
PY
fi
# ovs-vsctl, ovs-ofctl and ovs-appctl in /usr/bin, so tests can inspect the
# switch from the real root: from the same Debian packages as the OVS add-on
# (initramfs/fetch-ovs.sh), libraries from that tree first, then the host's
# (glibc). Copied after nft/ip, so a library both need is the package's.
ovs_root=$("$top/initramfs/fetch-ovs.sh")
"$top/.venv/bin/python" - "$stage" "$ovs_root" <<'PY'
import sys
from pathlib import Path
from initramfs.addon import ROOT_TOOLS, install, resolve_layered
install(resolve_layered(Path(sys.argv[2]), ROOT_TOOLS), Path(sys.argv[1]))
PY
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$stage/etc/passwd"
printf 'root:x:0:\n' > "$stage/etc/group"
printf '# replaced by mosnet\n' > "$stage/etc/resolv.conf"
printf 'NAME=mosnet test root\nID=mosnet-testroot\n' > "$stage/etc/os-release"
rm -f "$out"; mkdir -p "$(dirname "$out")"; truncate -s 64M "$out"
mkfs.ext4 -q -F -L mosroot -U 6b3ab0d2-5a0c-4c39-9d1e-2f0e7a8b9c10 -E root_owner=0:0 -d "$stage" "$out"
echo "$out"
