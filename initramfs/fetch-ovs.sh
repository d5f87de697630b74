#!/bin/bash
# Fetch Open vSwitch and the shared libraries it needs as Debian packages
# (apt-get download + dpkg-deb -x, never installed, never read from the host)
# into .cache/ovs/debs and .cache/ovs/root. Prints the root path on stdout.
#
# The package set is computed, not listed: starting from the OVS packages,
# follow Depends (first alternative) into every package of Section "libs",
# except glibc (libc6), which the base image and every root already carry.
# For OVS these are exactly the packages dpkg-shlibdeps derived from the
# binaries' DT_NEEDED entries; `python -m initramfs ovs` then checks that the
# tree really closes. .cache/ovs/packages.txt lists "name version" lines.
#
# Idempotent: a stamp holds this script's hash and the candidate version of
# the OVS packages; a new Debian point release fetches again. Concurrent runs
# (build.sh and qemu/mkroot.sh) wait for each other on a lock.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=$top/.cache/ovs
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
ROOTS=(openvswitch-switch openvswitch-common)
SKIP=(libc6)

candidates() {
    local out
    out=$(apt-cache policy "${ROOTS[@]}" 2>/dev/null | sed -n 's/^ *Candidate: //p')
    if [ "$(grep -vc '(none)' <<<"$out")" != ${#ROOTS[@]} ]; then
        apt-get update -q >&2
        out=$(apt-cache policy "${ROOTS[@]}" | sed -n 's/^ *Candidate: //p')
    fi
    [ "$(grep -vc '(none)' <<<"$out")" = ${#ROOTS[@]} ] || { echo "fetch-ovs: no candidate for ${ROOTS[*]}" >&2; exit 1; }
    paste -d' ' <(printf '%s\n' "${ROOTS[@]}") <(echo "$out")
}

# Package names from a deb's Depends/Pre-Depends: first alternative, no
# version constraint, no architecture qualifier.
depends_of() {
    dpkg-deb -f "$1" Pre-Depends Depends | sed 's/^[A-Za-z-]*: //' | tr ',' '\n' |
        sed 's/|.*//; s/(.*)//; s/:[a-z0-9]*//; s/[[:space:]]//g' | sed '/^$/d'
}

# The names among "$@" that are library packages (one apt-cache call).
lib_pkgs() {
    [ $# -gt 0 ] || return 0
    apt-cache show --no-all-versions "$@" 2>/dev/null |
        awk '/^Package: /{p=$2} /^Section: /{if ($2 == "libs" || $2 ~ /\/libs$/) print p}' | sort -u
}

# Breadth-first over Depends; every round is one apt-get download.
fetch_all() {
    local dir=$1 pkg dep
    local -A seen=()
    local queue=("${ROOTS[@]}") deps
    for pkg in "${ROOTS[@]}" "${SKIP[@]}"; do seen[$pkg]=1; done
    while [ ${#queue[@]} -gt 0 ]; do
        (cd "$dir/debs" && apt-get download -q "${queue[@]}" >&2)
        deps=()
        for pkg in "${queue[@]}"; do
            while read -r dep; do
                [ -n "${seen[$dep]:-}" ] && continue
                seen[$dep]=1
                deps+=("$dep")
            done < <(depends_of "$(ls "$dir/debs/${pkg}"_*.deb)")
        done
        mapfile -t queue < <(lib_pkgs "${deps[@]}")
    done
}

want=$( (sha256sum "$0" | cut -d' ' -f1; candidates) | sha256sum | cut -c1-32)
if [ "$(cat "$cache/.ready" 2>/dev/null)" != "$want" ] || [ ! -d "$cache/root" ]; then
    rm -rf "$cache/new"
    mkdir -p "$cache/new/debs" "$cache/new/root"
    fetch_all "$cache/new"
    for deb in "$cache"/new/debs/*.deb; do
        dpkg-deb -x "$deb" "$cache/new/root"
        dpkg-deb -f "$deb" Package Version | sed 's/^[A-Za-z]*: //' | paste -sd' '
    done | sort > "$cache/new/packages.txt"
    rm -rf "$cache/debs" "$cache/root"
    mv "$cache/new/debs" "$cache/new/root" "$cache/new/packages.txt" "$cache/"
    rmdir "$cache/new"
    echo "$want" > "$cache/.ready"
    echo "fetch-ovs: $(wc -l < "$cache/packages.txt") packages into $cache/root" >&2
fi
echo "$cache/root"
