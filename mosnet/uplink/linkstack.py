"""The links below the bridge: renames, bonds and VLANs, planned before the probe.

``ifname=`` renames, ``bond=`` and ``vlan=`` create, and ``ip=<dev>:...``
sets an MTU or MAC; this module turns them plus the discovered NICs into
printable actions (``mosnet plan`` shows them first) and predicts the
uplink candidates they leave: every bond and VLAN at the top of a stack,
then every NIC that is neither a bond slave nor a VLAN parent. Pure: no
netlink here; ``mosnet.uplink.linkapply`` runs the actions.

A stack whose parts are missing is planned as far as it can be and says
why in its notes: a bond without any of its slaves, or a VLAN without its
parent, is left out, so what remains (the plain NICs) still gets probed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mosnet.config.model import BondSpec, LinkSetting, NetConfig, VlanSpec
from mosnet.uplink.discover import Nic


@dataclass(frozen=True)
class RenameLink:
    mac: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"ip link set dev {self.old} name {self.new}  (ifname={self.new}:{self.mac})"


@dataclass(frozen=True)
class CreateBond:
    spec: BondSpec

    def __str__(self) -> str:
        return f"ip link add {self.spec.name} type bond {self.spec.options()}"


@dataclass(frozen=True)
class Enslave:
    dev: str
    bond: str
    primary: bool = False  # then: ip link set dev <bond> type bond primary <dev>

    def __str__(self) -> str:
        tail = f"; primary {self.dev}" if self.primary else ""
        return f"ip link set dev {self.dev} down master {self.bond}{tail}"


@dataclass(frozen=True)
class CreateVlan:
    spec: VlanSpec

    def __str__(self) -> str:
        s = self.spec
        return f"ip link add link {s.parent} name {s.name} type vlan id {s.vid}"


@dataclass(frozen=True)
class SetLinkMtu:
    dev: str
    mtu: int

    def __str__(self) -> str:
        return f"ip link set dev {self.dev} mtu {self.mtu}"


@dataclass(frozen=True)
class SetLinkMac:
    dev: str
    mac: str

    def __str__(self) -> str:
        return f"ip link set dev {self.dev} address {self.mac}"


@dataclass(frozen=True)
class SetLinkUp:
    dev: str

    def __str__(self) -> str:
        return f"ip link set dev {self.dev} up"


LinkAction = RenameLink | CreateBond | Enslave | CreateVlan | SetLinkMtu | SetLinkMac | SetLinkUp


@dataclass(frozen=True)
class LinkStack:
    actions: tuple[LinkAction, ...] = ()
    uplinks: tuple[Nic, ...] = ()  # the candidates, as the actions will leave them
    notes: tuple[str, ...] = ()
    virtual: tuple[str, ...] = ()  # bonds and VLANs it creates
    members: tuple[tuple[str, str], ...] = ()  # (link below, candidate above it)

    def uplink_of(self, name: str) -> str | None:
        """The candidate that carries ``name``: itself, or the bond/VLAN on top of it."""
        if any(n.name == name for n in self.uplinks):
            return name
        return next((top for low, top in self.members if low == name), None)


def plan_links(cfg: NetConfig, nics: tuple[Nic, ...]) -> LinkStack:
    """The actions for ``cfg``'s link parameters on ``nics`` (physical, as found)."""
    b = _Builder(cfg)
    present = b.rename(nics)
    for bond in cfg.bonds:
        b.bond(bond, present)
    for vlan in cfg.vlans:
        b.vlan(vlan, present)
    tops = [n for name, n in b.made.items() if name not in b.below]
    tops += sorted((n for n in present.values() if n.name not in b.below), key=lambda n: n.name)
    generic = b.generic(len(tops))
    uplinks = tuple(b.finish(n, generic) for n in tops)
    members = tuple((low, b.top(low)) for low in b.below)
    return LinkStack(tuple(b.actions), uplinks, tuple(b.notes), tuple(b.made), members)


@dataclass
class _Builder:
    cfg: NetConfig
    actions: list[LinkAction] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    made: dict[str, Nic] = dataclasses.field(default_factory=dict)  # bonds and VLANs
    below: dict[str, str] = dataclasses.field(default_factory=dict)  # link -> link above
    applied: dict[str, tuple[int | None, str | None]] = dataclasses.field(default_factory=dict)

    def setting(self, dev: str | None) -> LinkSetting:
        """The last MTU and the last MAC ``ip=`` gives ``dev`` (None: no interface named)."""
        found = [s for s in self.cfg.link_settings if s.device == dev]
        mtu = next((s.mtu for s in reversed(found) if s.mtu is not None), None)
        mac = next((s.mac for s in reversed(found) if s.mac is not None), None)
        return LinkSetting(dev, mtu, mac)

    def settings(self, dev: str, mtu: int | None = None) -> None:
        """MTU and MAC actions for ``dev`` named in ``ip=`` (which wins over ``mtu``)."""
        s = self.setting(dev)
        mtu = s.mtu if s.mtu is not None else mtu
        self.actions += [SetLinkMtu(dev, mtu)] if mtu is not None else []
        self.actions += [SetLinkMac(dev, s.mac)] if s.mac is not None else []
        self.applied[dev] = (mtu, s.mac)

    def generic(self, candidates: int) -> LinkSetting:
        """``ip=`` MTU/MAC without an interface: for every candidate; a MAC only for one."""
        s = self.setting(None)
        if s.mac is not None and candidates != 1:
            self.notes.append(f"MAC {s.mac} without an interface ignored: {candidates} uplinks")
            s = dataclasses.replace(s, mac=None)
        return s

    def finish(self, nic: Nic, generic: LinkSetting) -> Nic:
        """The candidate as the actions leave it (``generic`` where ``ip=`` names nothing)."""
        if nic.name not in self.applied:
            self.settings(nic.name)
        mtu, mac = self.applied[nic.name]
        if mtu is None and generic.mtu is not None:
            mtu = generic.mtu
            self.actions.append(SetLinkMtu(nic.name, mtu))
        if mac is None and generic.mac is not None:
            mac = generic.mac
            self.actions.append(SetLinkMac(nic.name, mac))
        return dataclasses.replace(nic, mtu=mtu or nic.mtu, mac=mac or nic.mac)

    def rename(self, nics: tuple[Nic, ...]) -> dict[str, Nic]:
        present = {n.name: n for n in nics}
        by_mac = {n.mac.lower(): n for n in nics}
        for new, mac in self.cfg.ifnames:
            nic = by_mac.get(mac)
            if nic is None:
                self.notes.append(f"ifname={new}:{mac}: no NIC has this MAC")
            elif nic.name != new:
                self.actions.append(RenameLink(mac, nic.name, new))
                present.pop(nic.name, None)
                present[new] = dataclasses.replace(nic, name=new)
        return present

    def bond(self, spec: BondSpec, present: dict[str, Nic]) -> None:
        slaves = [present[s] for s in spec.slaves if s in present and s not in self.below]
        missing = [s for s in spec.slaves if s not in {n.name for n in slaves}]
        if missing:
            self.notes.append(f"bond {spec.name}: no free NIC {', '.join(missing)}")
        taken = spec.name in present and present[spec.name].kind != "bond"  # a bond: reused
        if not slaves or taken:
            why = "a NIC has that name" if taken else "none of its slaves"
            self.notes.append(f"bond {spec.name} left out: {why}")
            return
        present.pop(spec.name, None)  # an existing bond of that name is reused
        self.actions.append(CreateBond(spec))
        self.actions += [Enslave(s.name, spec.name, s.name == spec.primary) for s in slaves]
        self.settings(spec.name, spec.mtu)
        self.actions.append(SetLinkUp(spec.name))
        self.below.update({s.name: spec.name for s in slaves})
        mtu, mac = self.applied[spec.name]
        first = slaves[0]  # the kernel gives a bond its first slave's MAC
        self.made[spec.name] = Nic(spec.name, 0, mac or first.mac, "", "", "bond", mtu or first.mtu)

    def vlan(self, spec: VlanSpec, present: dict[str, Nic]) -> None:
        parent = self.made.get(spec.parent) or present.get(spec.parent)
        above = self.made.get(self.below.get(spec.parent, ""))
        enslaved = above is not None and above.kind == "bond"
        if parent is None or parent.kind == "vlan" or enslaved:
            why = "not found" if parent is None else "a VLAN or a bond slave"
            self.notes.append(f"vlan {spec.name} left out: parent {spec.parent} is {why}")
            return
        taken = spec.name in present and present[spec.name].kind != "vlan"  # a VLAN: reused
        if taken or spec.name in self.made:
            self.notes.append(f"vlan {spec.name} left out: a link has that name")
            return
        present.pop(spec.name, None)  # an existing VLAN of that name is reused
        if spec.parent not in self.applied:
            self.settings(spec.parent)
        up = [SetLinkUp(spec.parent)] if SetLinkUp(spec.parent) not in self.actions else []
        self.actions += [*up, CreateVlan(spec), SetLinkUp(spec.name)]
        self.below.setdefault(spec.parent, spec.name)
        mtu, mac = self.applied.get(spec.parent, (None, None))
        self.made[spec.name] = Nic(
            spec.name, 0, mac or parent.mac, "", "", "vlan", mtu or parent.mtu
        )  # a VLAN has its parent's MAC; ip=<vlan>:... settings follow in finish()

    def top(self, name: str) -> str:
        while name in self.below:
            name = self.below[name]
        return name
