"""A baked-in command line (build.sh --cmdline) on a real boot.

The image is repacked from the already built Nuitka dist with the doc's
Hetzner ``--cmdline`` (test addresses), uncompressed to save the zstd time:
the same ``python -m initramfs build --cmdline`` that build.sh runs. One
boot (TCG boots are dear) with no ``mos*`` parameter on the kernel line:
the baked static dual-stack set-up and firewall apply, and the one
parameter the kernel line does give (``nameserver=``) replaces the baked
ones. The merge rules themselves are unit-tested (test_cmdmerge.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qemu import recipes
from qemu.vm import TOP, Vm
from tests.qemu.conftest import BOOT_TIMEOUT, boot_spec
from tests.qemu.test_boot_hetzner import NET6
from tests.qemu.test_recipes import hetzner, hetzner_gateway

CACHE = TOP / ".cache"


@pytest.fixture(scope="module")
def baked_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """out/'s image again, with the doc's baked line (test addresses) inside."""
    words = recipes.shell_words(recipes.blocks()["hetzner-bake"])
    line = hetzner(words[words.index("--cmdline") + 1])
    kernel = CACHE / "kernel" / "current"
    dist = CACHE / "nuitka" / "__main__.dist"
    if not (kernel / ".ready").exists() or not dist.is_dir():
        pytest.fail("no build inputs in .cache: run ./build.sh first")
    out = tmp_path_factory.mktemp("baked") / "baked.img"
    argv = [
        sys.executable, "-m", "initramfs", "build", "--out", str(out), "--compress", "none",
        "--kernel-root", str(kernel / "root"), "--kver", (kernel / ".ready").read_text().strip(),
        "--dist", str(dist), "--preinit", str(CACHE / "preinit" / "mosnet-init"),
        "--busybox", "/bin/busybox", "--extra-elf", "/usr/sbin/nft", "--cmdline", line,
    ]  # fmt: skip
    env = dict(os.environ, SOURCE_DATE_EPOCH="0")
    subprocess.run(argv, cwd=TOP, env=env, check=True, capture_output=True)
    yield out, line


def _boot(
    images: dict[str, Path], image: Path, tmp_path: Path, extra: str
) -> tuple[str, dict[str, Any]]:
    gw = hetzner_gateway(tmp_path)
    spec = boot_spec({**images, "initrd": image}, f"root=/dev/vda rw {extra}".strip(),
                     net="tap:tap0", netns=gw.name)  # fmt: skip
    try:
        with Vm(spec, tmp_path / "console.log") as vm:
            vm.wait_for(r"^ROOT: done", BOOT_TIMEOUT)
            console = vm.text()
    finally:
        gw.stop()
    state = re.search(r"^ROOT: state\.json (\{.*\})\s*$", console, re.M)
    assert state, "no state.json in the real root"
    return console, json.loads(state.group(1))


def test_baked_line_applies_and_the_kernel_line_overrides_one_parameter(
    images: dict[str, Path], baked_image: tuple[Path, str], tmp_path: Path
) -> None:
    """No mos* parameter on the kernel line; its nameserver= replaces the baked ones."""
    image, line = baked_image
    console, state = _boot(images, image, tmp_path, "nameserver=10.213.7.53")
    cmdline = state["boot"]["cmdline"]
    assert not [w for w in cmdline["kernel"].split() if w.startswith("mos")], cmdline["kernel"]
    # the baked line, read from the image, checked at build time, in effect
    assert f"mosnet: baked command line: {line}" in console and cmdline["baked"] == line
    assert "network mode: static" in console
    assert "gateway 10.213.7.1 answers on eth0" in console
    assert re.search(r"ROOT:\s+inet 10\.213\.7\.52/32 .* public", console)
    assert re.search(r"ROOT:\s+default via 10\.213\.7\.1 dev public onlink", console)
    assert re.search(rf"ROOT:\s+inet6 {NET6}::2/64 .* global", console)
    assert re.search(r"ROOT:\s+default via fe80::1 dev public", console)
    assert "ROOT:   table inet mosnet-firewall" in console
    # the one parameter the kernel line gives wins, as a set (nameserver repeats)
    baked_ns = ["nameserver=10.213.7.1", "nameserver=10.213.7.2"]
    for token in baked_ns:
        assert f"cmdline: baked {token} overridden by the kernel line" in console
    assert cmdline["overridden"] == baked_ns
    resolv = [ln.split()[-1] for ln in console.splitlines() if ln.startswith("ROOT:   nameserver")]
    assert resolv == ["10.213.7.53"], resolv
    assert cmdline["effective"].endswith("nameserver=10.213.7.53")
    assert "bad value" not in console and "Kernel panic" not in console
