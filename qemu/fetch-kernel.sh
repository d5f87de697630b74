#!/bin/bash
# Fetch the Debian kernel package (not installed: apt-get download + dpkg-deb -x)
# into .cache/kernel/<package>/ and prepare its module tree with depmod.
# Prints the kernel release (e.g. 6.1.0-56-amd64) on stdout.
# Default package: whatever linux-image-amd64 depends on for this Debian release.
# Override with MOSNET_KERNEL_PKG=linux-image-6.1.0-56-amd64.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=$top/.cache/kernel
mkdir -p "$cache"

pkg=${MOSNET_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
    if [ -z "$pkg" ]; then
        apt-get update -q >&2
        pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
    fi
fi
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve linux-image-amd64" >&2; exit 1; }

dir=$cache/$pkg
if [ ! -f "$dir/.ready" ]; then
    rm -rf "$dir" && mkdir -p "$dir/deb"
    (cd "$dir/deb" && apt-get download "$pkg" >&2)
    dpkg-deb -x "$dir"/deb/*.deb "$dir/root"
    kver=$(ls "$dir/root/lib/modules")
    # The package ships no modules.dep: the postinst would make it.
    depmod -b "$dir/root" "$kver"
    echo "$kver" > "$dir/.ready"
fi
ln -sfn "$pkg" "$cache/current"
cat "$dir/.ready"
