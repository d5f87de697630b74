"""build --hostonly: the build machine's modaliases and loaded modules pick the drivers."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from initramfs.build import build, config_from_args, summary
from initramfs.hostonly import host_drivers, host_modaliases, loaded_modules, wanted_modules
from initramfs.kmod import DEFAULT_MODULES, HARDWARE_MODULES, MOSNET_MODULES
from tests.unit.test_build import ARGS, fake_inputs, needs_tools
from tests.unit.test_kmod import make_tree

# top's alias in make_tree's modules.alias is "pci:v00001AF4d*"
VIRTIO_PCI = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"


def _sysfs(root: Path, aliases: dict[str, str]) -> Path:
    devices = root / "sys" / "devices"
    for rel, alias in aliases.items():
        (devices / rel).mkdir(parents=True, exist_ok=True)
        (devices / rel / "modalias").write_text(alias + "\n")
    return devices


def test_modaliases_are_read_from_every_device(tmp_path: Path) -> None:
    devices = _sysfs(
        tmp_path,
        {"pci0000:00/0000:00:03.0": VIRTIO_PCI, "platform/serial8250": "platform:serial8250",
         "pci0000:00/0000:00:04.0": VIRTIO_PCI, "empty": ""},
    )  # fmt: skip
    # a symlink loop, as /sys has (subsystem -> ../bus/...), is not followed
    os.symlink(devices, devices / "pci0000:00" / "subsystem")
    assert host_modaliases(devices) == {VIRTIO_PCI, "platform:serial8250"}


def test_loaded_modules(tmp_path: Path) -> None:
    proc = tmp_path / "modules"
    proc.write_text("e1000e 12 0 - Live 0x0\nnft-chain-nat 4 1 - Live 0x0\n\n")
    assert loaded_modules(proc) == {"e1000e", "nft_chain_nat"}
    assert loaded_modules(tmp_path / "absent") == set()  # a kernel without modules


def test_drivers_are_named_as_the_target_kernel_has_them(tmp_path: Path) -> None:
    moddir = make_tree(tmp_path / "kernel")
    devices = _sysfs(tmp_path, {"a": VIRTIO_PCI, "b": "acpi:NOTHING:"})
    proc = tmp_path / "modules"
    proc.write_text("unused 1 0 - Live 0x0\nnot_in_this_kernel 1 0 - Live 0x0\n")
    drivers = host_drivers(moddir, devices, proc)
    assert (drivers.modaliases, drivers.by_alias, drivers.loaded) == (2, ("top",), ("unused",))
    assert drivers.modules == ("top", "unused")
    assert wanted_modules(("bridge",), drivers, ("extra", "top")) == (
        "bridge",
        "top",
        "unused",
        "extra",
    )


def test_the_lists_split_the_default_without_overlap() -> None:
    assert set(HARDWARE_MODULES).isdisjoint(MOSNET_MODULES)
    assert DEFAULT_MODULES == HARDWARE_MODULES + MOSNET_MODULES
    assert {"bridge", "nf_tables", "ext4", "veth"} <= set(MOSNET_MODULES)
    assert {"virtio_net", "e1000e", "nvme", "ahci"} <= set(HARDWARE_MODULES)


@needs_tools
def test_hostonly_build_ships_the_host_drivers_and_reports_the_saving(tmp_path: Path) -> None:
    devices = _sysfs(tmp_path, {"a": VIRTIO_PCI})
    proc = tmp_path / "modules"
    proc.write_text("unused 1 0 - Live 0x0\n")
    common = fake_inputs(tmp_path, "default.img", "none")
    default = build(common)
    cfg = dataclasses.replace(
        common, out=tmp_path / "host.img", report=tmp_path / "host.json",
        hostonly=True, host_devices=devices, host_loaded=proc,
    )  # fmt: skip
    host = build(cfg)
    assert default.hostonly is None
    assert "unused" in host.modules and "unused" not in default.modules
    assert "top" in host.modules  # by its PCI alias
    figures = json.loads((tmp_path / "host.json").read_text())["hostonly"]
    assert figures["host_drivers"] == ["top", "unused"]
    assert figures["saved_bytes"] == figures["default_modules_bytes"] - figures["modules_bytes"]
    assert figures["modules_bytes"] > figures["default_modules_bytes"]  # unused.ko came in
    assert "host-only: 2 drivers for 1 modaliases" in summary(host, cfg.out)


@pytest.mark.parametrize("flag", [[], ["--hostonly"]])
def test_the_flag_reaches_the_config(flag: list[str]) -> None:
    assert config_from_args([*ARGS, *flag]).hostonly == bool(flag)
