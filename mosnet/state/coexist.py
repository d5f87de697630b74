"""Keep the real system's network managers off the links mosnet owns.

PID 1 writes these files into the /run that the real root inherits, right
before switch_root, so they are in place before systemd-networkd,
NetworkManager or ifupdown start:

* ``/run/systemd/network/00-mosnet.network``: ``Unmanaged=yes`` for
  br-mosnet, the internal port (and its veth peer) and the uplink NIC.
  ``KeepConfiguration=`` is not enough: networkd would still manage the
  link (accept_ra, link-local addresses, MTU, foreign routes on reconfigure).
* ``/run/systemd/network/00-mosnet.link``: udev's coldplug neither renames
  them (a rename of an up link fails and leaves it "pending") nor changes a MAC.
* ``/run/systemd/system/systemd-networkd-wait-online.service.d/00-mosnet.conf``:
  skips wait-online when every link is mosnet's (systemd 252 would wait 2 min).
* ``/run/NetworkManager/conf.d/00-mosnet.conf``: the same links, by name
  and by the uplink MAC, appended (``+=``) to ``unmanaged-devices``.
* ``/run/network/ifstate.<link>``: ifupdown's own state says each link is
  already up as the logical interface ``mosnet``, so ``ifup -a`` skips it,
  and ``ifdown`` finds no ``iface mosnet`` stanza to run at shutdown.

A file of the same name in /etc overrides the /run one (networkd, NM): that
is how an administrator takes a link back. Pure text generation is separate
from writing, so the unit tests check the exact files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from mosnet.base import atomicfile, log
from mosnet.base.names import BRIDGE, PEER_SUFFIX
from mosnet.state import statefile

_log = log.get("coexist")

OVS_DATAPATH_LINK = "ovs-system"
NETWORKD_FILE = "systemd/network/00-mosnet.network"
LINK_FILE = "systemd/network/00-mosnet.link"
WAIT_ONLINE_FILE = "systemd/system/systemd-networkd-wait-online.service.d/00-mosnet.conf"
NM_FILE = "NetworkManager/conf.d/00-mosnet.conf"
IFSTATE_DIR = "network"
IFUPDOWN_LOGICAL = "mosnet"  # a logical interface no /etc/network/interfaces defines

_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
HEADER = "mosnet-init wrote this at boot: mosnet owns these links"


@dataclass(frozen=True)
class OwnedLinks:
    names: tuple[str, ...] = ()
    macs: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.names)


def owned_links(
    nic: str | None, nic_mac: str | None, port: str | None, backend: str | None
) -> OwnedLinks:
    """The links the network phase left behind (what state.json calls nic/port/backend).

    After a rollback the address sits on the NIC itself (``port == nic``):
    then the NIC alone is mosnet's.
    """
    if not nic:
        return OwnedLinks()
    names = [nic]
    if port and port != nic and backend in ("linux", "ovs"):
        names += [BRIDGE, port]
        names += [port + PEER_SUFFIX] if backend == "linux" else [OVS_DATAPATH_LINK]
    names = [n for n in dict.fromkeys(names) if _IFNAME.match(n)]  # never write odd text
    mac = (nic_mac or "").lower()
    return OwnedLinks(tuple(names), (mac,) if _MAC.match(mac) else ())


def networkd_text(links: OwnedLinks) -> str:
    return (
        f"# {HEADER}; systemd-networkd leaves them alone.\n"
        f"# A file of the same name in /etc/systemd/network overrides this one.\n"
        f"[Match]\nName={' '.join(links.names)}\n\n[Link]\nUnmanaged=yes\n"
    )


def udev_link_text(links: OwnedLinks) -> str:
    """No renaming and no new MAC from udev's coldplug in the real root.

    99-default.link would rename the uplink (eth0 -> enp0s3), which fails on
    a link that is up (EBUSY); the failed event leaves the link "pending" in
    networkd forever, which is also what networkd-wait-online waits for.
    """
    return (
        f"# {HEADER}; udev keeps their names and MACs.\n"
        f"[Match]\nOriginalName={' '.join(links.names)}\n\n"
        "[Link]\nNamePolicy=\nMACAddressPolicy=none\n"
    )


def wait_online_text(links: OwnedLinks) -> str:
    """Skip systemd-networkd-wait-online when every link is mosnet's (or lo).

    systemd 252 (Debian 12) waits its full 2 min and fails when networkd
    manages no link at all (systemd#25813, fixed in 253). When every link is
    mosnet's, mosnet brought the network up before systemd started: there is
    nothing to wait for. Any other link, and wait-online runs as usual.
    """
    names = " ".join(("lo", *links.names))
    script = (
        f'for l in /sys/class/net/*; do case " {names} " in *" $${{l##*/}} "*) ;; '
        "*) exit 0 ;; esac; done; exit 1"
    )
    return (
        f"# {HEADER}; networkd-wait-online has nothing to wait for when\n"
        "# every link is mosnet's (systemd 252 would wait its full timeout).\n"
        f"[Service]\nExecCondition=/bin/sh -c '{script}'\n"
    )


def networkmanager_text(links: OwnedLinks) -> str:
    specs = [f"interface-name:{n}" for n in links.names] + [f"mac:{m}" for m in links.macs]
    return (
        f"# {HEADER}; NetworkManager leaves them alone.\n"
        f"# A file of the same name in /etc/NetworkManager/conf.d overrides this one.\n"
        f"[keyfile]\nunmanaged-devices+={';'.join(specs)}\n"
    )


def ifstate_files(links: OwnedLinks) -> dict[str, str]:
    """ifupdown's per-link state: ``<link>=<logical>`` lines under /run/network."""
    return {f"ifstate.{n}": f"{n}={IFUPDOWN_LOGICAL}\n" for n in links.names}


def render(links: OwnedLinks) -> dict[str, str]:
    """Every file, by its path relative to /run."""
    if not links:
        return {}
    files = {
        NETWORKD_FILE: networkd_text(links),
        LINK_FILE: udev_link_text(links),
        WAIT_ONLINE_FILE: wait_online_text(links),
        NM_FILE: networkmanager_text(links),
    }
    for name, text in ifstate_files(links).items():
        files[os.path.join(IFSTATE_DIR, name)] = text
    return files


def write(links: OwnedLinks, run: str = "/run") -> tuple[list[str], list[str]]:
    """Write the files under ``run``; return (paths written, errors). Never raises OSError.

    Each error is logged as well: a full /run keeps the previous file.
    """
    written: list[str] = []
    errors: list[str] = []
    for rel, text in render(links).items():
        path = os.path.join(run, rel)
        try:
            if rel.startswith(IFSTATE_DIR + "/") and _foreign_ifstate(path):
                errors.append(f"{path}: ifupdown already has this link; left as it is")
                continue
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            atomicfile.write_bytes(path, text.encode())
            written.append(path)
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
            _log.warning("%s", errors[-1])
    return written, errors


def _foreign_ifstate(path: str) -> bool:
    """An ifstate file that someone other than mosnet wrote (never clobber it)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return False
    return bool(text.strip()) and not text.strip().endswith("=" + IFUPDOWN_LOGICAL)


def from_state(network: dict[str, object]) -> OwnedLinks:
    """The owned links from state.json's ``network`` section (``mosnet coexist``)."""

    def text(key: str) -> str | None:
        value = network.get(key)
        return value if isinstance(value, str) else None

    return owned_links(text("nic"), text("nic_mac"), text("port"), text("backend"))


def hand_off(
    nic: str | None, nic_mac: str | None, port: str | None, backend: str | None, run: str = "/run"
) -> tuple[list[str], list[str]]:
    """PID 1, right before switch_root: the files for what the network phase left."""
    return write(owned_links(nic, nic_mac, port, backend), run)


def hand_off_from_state(run_dir: str, run: str = "/run") -> list[str]:
    """Chain mode: the daemon, once in the real root, writes what PID 1 could not.

    PID 1 execs the distro's init there instead of switching root itself, and
    the distro mounts a fresh /run, so the files must go into that one; the
    links come from state.json's network section. Records what it wrote.
    """
    links = from_state(statefile.load(run_dir).get("network") or {})
    written, errors = write(links, run) if links else ([], [])

    def note(s: statefile.State) -> None:
        section = s.setdefault("network", {})
        section["coexist"] = written
        section["errors"] = list(section.get("errors", [])) + errors

    statefile.update(run_dir, note)
    return written
