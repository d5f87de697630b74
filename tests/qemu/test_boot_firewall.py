"""mosfirewall=/mosnat= on a real boot: tables in the real root, ports from outside."""

from __future__ import annotations

import os
import re
from pathlib import Path

from qemu.topology import Gateway
from qemu.vm import Vm
from tests.qemu.conftest import BOOT_TIMEOUT, boot_spec, http_get


def test_firewall_and_nat_tables_guard_the_real_root(
    images: dict[str, Path], tmp_path: Path
) -> None:
    gw = Gateway(name=f"mosqf-{os.getpid()}", workdir=tmp_path / "gw")
    gw.start(dhcp=False)
    addr = f"{gw.net}.51"
    append = (
        f"root=/dev/vda rw mosip4={addr},{gw.address},255.255.255.0 "
        "mosfirewall=ssh,tcp:8080 mosnat=snat,8081:192.168.77.2:80/tcp "
        "mostest.listen=8080,23 mostest.wait=20"
    )
    try:
        with Vm(boot_spec(images, append, net="tap:tap0", netns=gw.name), tmp_path / "c.log") as vm:
            vm.wait_for(r"^ROOT: waiting", BOOT_TIMEOUT)
            open_port = http_get(gw, addr, 8080)
            closed_port = http_get(gw, addr, 23)
            vm.wait_for(r"^ROOT: done", 60)
            console = vm.text()
    finally:
        gw.stop()
    assert "ROOT: listening on 8080" in console and "ROOT: listening on 23" in console
    tables = re.findall(r"ROOT:\s+(table \S+ \S+)", console)
    assert "table inet mosnet-firewall" in tables and "table ip mosnet-nat" in tables
    assert open_port, "tcp 8080 (mosfirewall=ssh,tcp:8080) is not reachable"
    assert not closed_port, "tcp 23 answered through a policy-drop firewall"
    assert "firewall: applied inet mosnet-firewall, ip mosnet-nat" in console
    assert "Kernel panic" not in console
