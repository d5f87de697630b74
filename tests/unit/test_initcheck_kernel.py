"""init.initcheck: ELF and #! verdicts compared with the host kernel's own execve."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from init import initcheck as ic
from tests.unit.helpers.initcheck_root import ACCEPT, BUSYBOX, DYNAMIC, _pack_half, elf_of, patched

needs_host = pytest.mark.skipif(
    not os.path.exists(BUSYBOX) or not os.path.exists(DYNAMIC), reason="needs /bin/busybox"
)
EXAMPLES = int(os.environ.get("MOSNET_INITCHECK_EXAMPLES", "300"))


def kernel_runs(path: pathlib.Path) -> bool:
    try:
        return subprocess.run([str(path)], capture_output=True, timeout=10).returncode == 0
    except OSError:
        return False


@needs_host
@pytest.mark.parametrize(
    "variant", ["plain", "foreign", "et-rel", "truncated", "missing-interp", "no-x"]
)
def test_elf_verdict_matches_the_kernel(tmp_path: pathlib.Path, variant: str) -> None:
    target = tmp_path / "prog"
    if variant == "foreign":
        patched(DYNAMIC, target, 18, _pack_half(183 if os.uname().machine != "aarch64" else 62))
    elif variant == "et-rel":
        patched(DYNAMIC, target, 16, _pack_half(1))
    elif variant == "truncated":
        target.write_bytes(pathlib.Path(DYNAMIC).read_bytes()[:64])
        target.chmod(0o755)
    elif variant == "missing-interp":
        interp = (elf_of(DYNAMIC).interp or "").encode()
        raw = pathlib.Path(DYNAMIC).read_bytes()
        patched(DYNAMIC, target, raw.index(interp + b"\0") + 1, b"Q")  # /lib64 -> /Qib64
    else:
        shutil.copyfile(DYNAMIC, target)
        target.chmod(0o644 if variant == "no-x" else 0o755)
    try:
        ours = bool(ic.check_runnable("/", str(target), ACCEPT))
    except ic.NotRunnable:
        ours = False
    assert ours == kernel_runs(target) == (variant == "plain")


def _shebang_verdicts(work: pathlib.Path, line: bytes) -> tuple[bool, bool]:
    path = work / "script"
    path.write_bytes(line)
    path.chmod(0o755)
    try:
        ours = bool(ic.check_runnable("/", str(path), ACCEPT))
    except ic.NotRunnable:
        ours = False
    return ours, kernel_runs(path)


def _interp_link(work: pathlib.Path) -> None:
    if not (work / "i").is_symlink():
        (work / "i").symlink_to(DYNAMIC)


@needs_host
@pytest.mark.parametrize("after", ["", "x" * 8, " -e", "\t-e\n", "\n", "\0", "\r\n"])
def test_shebang_at_the_256_byte_limit_matches_the_kernel(
    tmp_path: pathlib.Path, after: str
) -> None:
    """The interpreter's name ends at bytes 250..259 of the file; '//' stretches it."""
    _interp_link(tmp_path)
    for end in range(250, 260):
        slashes = end - len(f"#!{tmp_path}i")
        line = f"#!{tmp_path}{'/' * slashes}i{after}".encode()
        assert len(line) - len(after) == end
        ours, kernel = _shebang_verdicts(tmp_path, line)
        assert ours == kernel, (end, line)


_TOKENS = st.sampled_from(["I", "I", "M", "I\r", "I\t-e", "I -e x", "I\0-e", "-e"])
_BLANK = st.sampled_from(["", " ", "\t", "  ", " \t "])
_END = st.sampled_from(["\n", "\r\n", "", "\0", " \n", "\t\n", "\n#!M\n"])


@needs_host
@settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
@given(
    lead=_BLANK,
    token=_TOKENS,
    slashes=st.integers(1, 260),
    tail=_BLANK,
    pad=st.one_of(st.just(0), st.integers(0, 260)),
    end=_END,
)
def test_shebang_verdict_matches_the_kernel(
    tmp_path_factory: pytest.TempPathFactory,
    lead: str,
    token: str,
    slashes: int,
    tail: str,
    pad: int,
    end: str,
) -> None:
    """Lines around the 256-byte limit, blanks, CR, NUL: ours == execve's answer.

    ``I`` is a runnable interpreter (a link to /bin/true), ``M`` a missing one;
    repeated slashes stretch the interpreter's name across the limit.
    """
    work = tmp_path_factory.mktemp("bang")
    _interp_link(work)
    stretch = str(work) + "/" * slashes
    interp = token.replace("I", f"{stretch}i").replace("M", f"{stretch}missing")
    line = f"#!{lead}{interp}{tail}" + "x" * pad + end
    ours, kernel = _shebang_verdicts(work, line.encode())
    assert ours == kernel, line.encode()
