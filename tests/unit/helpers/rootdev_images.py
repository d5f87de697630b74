"""Disk images for the init.rootdev tests: tools, and module-scoped image fixtures.

The fixtures are imported by name into each test module that uses them.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

EXT_UUID = "0a1b2c3d-4e5f-4a6b-8c7d-0123456789ab"
GPT_DISK = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
P1_UUID = "0fc63daf-0000-4000-8000-000000000001"
P2_UUID = "0fc63daf-0000-4000-8000-000000000002"
LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{name} not installed")
    return path


def run(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)


def sparse(path: pathlib.Path, size: int) -> pathlib.Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("img")


@pytest.fixture(scope="module")
def ext4_img(images: pathlib.Path) -> pathlib.Path:
    img = sparse(images / "ext4.img", 8 << 20)
    run(tool("mkfs.ext4"), "-q", "-F", "-U", EXT_UUID, "-L", "rootfs", str(img))
    return img


def _copy_into(disk: pathlib.Path, fs: pathlib.Path, offset: int) -> None:
    with open(disk, "r+b") as out, open(fs, "rb") as src:
        out.seek(offset)
        out.write(src.read(2 << 20))  # superblocks are in the first MiB


@pytest.fixture(scope="module")
def gpt_img(images: pathlib.Path, ext4_img: pathlib.Path) -> pathlib.Path:
    disk = sparse(images / "gpt.img", 32 << 20)
    script = (
        f"label: gpt\nlabel-id: {GPT_DISK}\n"
        f'start=2048, size=16384, type={LINUX_FS}, uuid={P1_UUID.upper()}, name="system"\n'
        f'start=18432, size=8192, type={LINUX_FS}, uuid={P2_UUID}, name="data"\n'
    )
    run(tool("sfdisk"), "-q", str(disk), stdin=script)
    _copy_into(disk, ext4_img, 2048 * 512)
    return disk


@pytest.fixture(scope="module")
def mbr_img(images: pathlib.Path) -> pathlib.Path:
    disk = sparse(images / "mbr.img", 32 << 20)
    script = (
        "label: dos\nlabel-id: 0x1234abcd\n"
        "start=2048, size=8192, type=83\n"
        "start=10240, size=40000, type=5\n"
        "start=12288, size=4096, type=83\n"
        "start=18432, size=4096, type=83\n"
    )
    run(tool("sfdisk"), "-q", str(disk), stdin=script)
    return disk
