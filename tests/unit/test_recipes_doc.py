"""docs/boot-recipes.md: every block is there, parses, and says the same as its twin.

The QEMU tier boots the blocks (tests/qemu/test_recipes.py); these checks
catch a broken doc in a second.
"""

from __future__ import annotations

import re

from init import bootcfg
from initramfs import baked
from mosnet.config import cmdline, kcmdline
from qemu import recipes
from qemu.vm import TOP


def test_the_doc_has_exactly_the_tested_recipes() -> None:
    text = recipes.DOC.read_text()
    marked = re.findall(r"<!-- recipe: ([a-z0-9-]+) -->", text)
    assert sorted(marked) == sorted(recipes.NAMES)
    assert sorted(recipes.blocks()) == sorted(recipes.NAMES)  # each marker has its block


def _kernel_lines() -> dict[str, str]:
    b = recipes.blocks()
    ipxe = next(line for line in b["ipxe-script"].splitlines() if line.startswith("kernel "))
    pxe = next(line for line in b["pxelinux-cfg"].splitlines() if "APPEND" in line)
    grub = next(line for line in b["grub-entry"].splitlines() if line.strip().startswith("linux "))
    qemu = recipes.shell_words(b["qemu"])
    return {
        # iPXE expands its variables before the kernel sees the line
        "ipxe": ipxe.split(None, 2)[2].replace("${netX/mac:hexhyp}", "52-54-00-12-34-56"),
        "pxelinux": pxe.split(None, 1)[1],
        "grub": grub.split(None, 2)[2],
        "qemu": qemu[qemu.index("-append") + 1],
        "hetzner": b["hetzner-cmdline"].strip(),
    }


def test_every_kernel_line_parses_without_errors_or_notes() -> None:
    for name, line in _kernel_lines().items():
        net = cmdline.parse(line)
        cfg, boot_errors = bootcfg.parse(line)
        assert (net.errors, net.notes, boot_errors) == ((), (), ()), name
        assert cfg.root.kind in ("label", "path") and not cfg.readonly, name


def test_the_hetzner_line_is_a_static_dual_stack_host_with_ssh_only() -> None:
    net = cmdline.parse(_kernel_lines()["hetzner"]).config
    assert net.ip4 is not None and net.ip4.prefixlen == 32
    assert net.ip6 is not None and str(net.ip6.gateway) == "fe80::1"
    assert net.bridge == "linux" and net.firewall is not None
    assert net.firewall.preset == "ssh" and net.firewall.tcp == ()


def test_the_baked_variant_is_the_network_part_of_the_hetzner_line() -> None:
    words = recipes.shell_words(recipes.blocks()["hetzner-bake"])
    assert words[:2] == ["./build.sh", "--cmdline"] and len(words) == 3
    line, notes = baked.check(words[2])
    assert notes == ()
    full = kcmdline.split(_kernel_lines()["hetzner"])
    assert list(kcmdline.split(line)) == [p for p in full if p.key.startswith("mos") or
                                          p.key == "nameserver"]  # fmt: skip


def test_the_qemu_line_is_tcg_only() -> None:
    argv = recipes.shell_words(recipes.blocks()["qemu"])
    assert argv[0] == "qemu-system-x86_64"
    assert argv[argv.index("-accel") + 1] == "tcg" and "kvm" not in " ".join(argv)


def test_loader_specifics() -> None:
    b = recipes.blocks()
    assert b["ipxe-script"].startswith("#!ipxe\n")
    assert "BOOTIF=01-${netX/mac:hexhyp}" in b["ipxe-script"]
    assert "IPAPPEND 2" in b["pxelinux-cfg"]
    assert recipes.dnsmasq_args(b["ipxe-dnsmasq"])[0] == "--dhcp-match=set:ipxe,175"
    srv = recipes.block("pxelinux-dnsmasq", "10.0.0.1", TOP / "x")
    assert f"--tftp-root={TOP}/x/tftp" in recipes.dnsmasq_args(srv)
