"""init.initcheck: would the kernel run this init inside the new root?

Fake roots in tmp_path hold real binaries copied from the host (static
busybox, a dynamic /bin/true with its loader), patched copies of them and
scripts. The ``#!`` parser and the ELF checks are also compared with the
host kernel's own execve.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import stat
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from init import initcheck as ic

ACCEPT = ic.machine_ids()
BUSYBOX = "/bin/busybox"
DYNAMIC = "/bin/true"
needs_host = pytest.mark.skipif(
    not os.path.exists(BUSYBOX) or not os.path.exists(DYNAMIC), reason="needs /bin/busybox"
)
EXAMPLES = int(os.environ.get("MOSNET_INITCHECK_EXAMPLES", "300"))


def elf_of(path: str) -> ic.ElfInfo:
    fd = os.open(path, os.O_RDONLY)
    try:
        return ic.read_elf(fd, path)
    finally:
        os.close(fd)


def put(root: pathlib.Path, path: str, source: str | None = None, mode: int = 0o755) -> str:
    """Copy ``source`` (or write nothing) to ``path`` inside ``root``."""
    dst = root / path.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if source is None:
        dst.write_bytes(b"")
    else:
        shutil.copyfile(source, dst)
    dst.chmod(mode)
    return path


def script(root: pathlib.Path, path: str, text: str | bytes, mode: int = 0o755) -> str:
    dst = root / path.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(text.encode() if isinstance(text, str) else text)
    dst.chmod(mode)
    return path


def link(root: pathlib.Path, path: str, target: str) -> None:
    dst = root / path.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(target)


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    """A new root as Debian lays it out: busybox as /bin/sh, a dynamic /bin/true,
    its loader behind an absolute symlink (/lib64/... -> /usr/lib/...)."""
    if not os.path.exists(BUSYBOX) or not os.path.exists(DYNAMIC):
        pytest.skip("needs /bin/busybox and /bin/true")
    r = tmp_path / "root"
    put(r, "/bin/busybox", BUSYBOX)
    link(r, "/bin/sh", "busybox")
    put(r, "/bin/true", DYNAMIC)
    interp = elf_of(DYNAMIC).interp
    assert interp is not None
    real = "/usr/lib/loader/" + os.path.basename(interp)
    put(r, real, os.path.realpath(interp))
    link(r, interp, real)  # absolute: must resolve inside r, not on the host
    return r


def runs(root: pathlib.Path, path: str) -> ic.Runnable:
    return ic.check_runnable(str(root), path, ACCEPT)


def refused(root: pathlib.Path, path: str) -> str:
    with pytest.raises(ic.NotRunnable) as info:
        ic.check_runnable(str(root), path, ACCEPT)
    return str(info.value)


def patched(src: str, dst: pathlib.Path, offset: int, data: bytes) -> None:
    raw = bytearray(pathlib.Path(src).read_bytes())
    raw[offset : offset + len(data)] = data
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(raw))
    dst.chmod(0o755)


def _pack_half(value: int) -> bytes:
    return struct.pack("<H" if elf_of(BUSYBOX).ident.data == 1 else ">H", value)


# --- ELF ---


def test_static_and_dynamic_elf_run(root: pathlib.Path) -> None:
    assert "static" in runs(root, "/bin/busybox").how
    dyn = runs(root, "/bin/true")
    interp = elf_of(DYNAMIC).interp
    assert interp is not None and "via" in dyn.how and interp in dyn.how
    assert runs(root, "/bin/sh").resolved == "/bin/busybox"


def test_missing_loader_in_the_new_root_is_refused(root: pathlib.Path) -> None:
    """The host has the loader; the new root does not: only the new root counts."""
    (root / "usr/lib/loader").rename(root / "usr/lib/elsewhere")
    reason = refused(root, "/bin/true")
    assert "ELF interpreter" in reason and "does not exist" in reason, reason


def test_loader_link_escaping_the_root_is_refused(root: pathlib.Path) -> None:
    interp = elf_of(DYNAMIC).interp
    assert interp is not None
    (root / interp.lstrip("/")).unlink()
    link(root, interp, "../../../../../../../../" + os.path.realpath(interp).lstrip("/"))
    assert "escapes the new root" in refused(root, "/bin/true")


@pytest.mark.parametrize("problem", ["not-executable", "text-file", "foreign"])
def test_bad_loader_is_refused(root: pathlib.Path, problem: str) -> None:
    loader = root / "usr/lib/loader" / os.path.basename(elf_of(DYNAMIC).interp or "")
    if problem == "not-executable":
        loader.chmod(0o644)
        expected = "is not executable"
    elif problem == "text-file":
        loader.write_text("#!/bin/sh\n")
        expected = "not an ELF file"
    else:
        patched(str(loader), loader, 18, _pack_half(183 if os.uname().machine != "aarch64" else 62))
        expected = "its ELF interpreter"
    reason = refused(root, "/bin/true")
    assert expected in reason and "ELF interpreter" in reason, reason


def test_foreign_arch_elf_is_refused(root: pathlib.Path) -> None:
    other = 183 if os.uname().machine != "aarch64" else 62  # AArch64, or x86-64
    patched(BUSYBOX, root / "sbin/init", 18, _pack_half(other))
    reason = refused(root, "/sbin/init")
    assert "this kernel runs" in reason and "ELF64" in reason, reason
    # Negative control: the same file unpatched is accepted.
    put(root, "/sbin/init", BUSYBOX)
    assert runs(root, "/sbin/init").how.endswith("static")


@pytest.mark.parametrize(
    ("offset", "data", "expected"),
    [
        (16, b"\x01\x00", "ELF type 1"),  # ET_REL: an object file
        (4, b"\x07", "bad ELF identification"),
        (5, b"\x00", "bad ELF identification"),
    ],
)
def test_broken_elf_header_is_refused(
    root: pathlib.Path, offset: int, data: bytes, expected: str
) -> None:
    patched(BUSYBOX, root / "sbin/init", offset, data)
    assert expected in refused(root, "/sbin/init")


def test_truncated_elf_is_refused(root: pathlib.Path) -> None:
    script(root, "/sbin/init", pathlib.Path(BUSYBOX).read_bytes()[:64])
    assert "cut short" in refused(root, "/sbin/init")


def test_interp_without_nul_is_refused(root: pathlib.Path) -> None:
    raw = pathlib.Path(DYNAMIC).read_bytes()
    interp = (elf_of(DYNAMIC).interp or "").encode()
    nul = raw.index(interp + b"\0") + len(interp)
    patched(DYNAMIC, root / "sbin/init", nul, b"x")
    assert "not NUL-terminated" in refused(root, "/sbin/init")


def test_not_elf_not_script_is_refused(root: pathlib.Path) -> None:
    script(root, "/sbin/empty", b"")
    script(root, "/sbin/text", "echo hello\n")
    assert "(empty)" in refused(root, "/sbin/empty")
    assert "neither ELF nor a #! script" in refused(root, "/sbin/text")
    (root / "sbin/dir").mkdir()
    assert "is not a regular file" in refused(root, "/sbin/dir")


# --- scripts ---


def test_script_with_present_interpreter_runs(root: pathlib.Path) -> None:
    script(root, "/sbin/init", "#!/bin/sh\necho hi\n")
    assert runs(root, "/sbin/init").how.startswith("#! '/bin/sh'")
    # A relative interpreter resolves from /, the cwd after the chroot.
    script(root, "/sbin/rel", "#! bin/sh -e\n")
    assert runs(root, "/sbin/rel").how.startswith("#! 'bin/sh'")


def test_old_check_accepted_what_the_new_one_refuses(root: pathlib.Path) -> None:
    """Negative control: '#!/nonexistent/sh' is a regular executable file, all the
    old check (regular file, an x bit) looked at; the kernel would not run it."""
    path = script(root, "/sbin/init", "#!/nonexistent/sh\n")
    st = os.stat(root / path.lstrip("/"))
    assert stat.S_ISREG(st.st_mode) and st.st_mode & 0o111
    reason = refused(root, path)
    assert "#! interpreter" in reason and "/nonexistent" in reason, reason


@pytest.mark.parametrize(
    ("interp_setup", "expected"),
    [
        ("missing", "does not exist"),
        ("not-executable", "is not executable"),
        ("directory", "is not a regular file"),
        ("dangling-link", "does not exist"),
        ("text", "neither ELF nor a #! script"),
    ],
)
def test_script_with_bad_interpreter_is_refused(
    root: pathlib.Path, interp_setup: str, expected: str
) -> None:
    if interp_setup == "not-executable":
        put(root, "/usr/bin/interp", BUSYBOX, mode=0o644)
    elif interp_setup == "directory":
        (root / "usr/bin/interp").mkdir(parents=True)
    elif interp_setup == "dangling-link":
        link(root, "/usr/bin/interp", "/nowhere/sh")
    elif interp_setup == "text":
        script(root, "/usr/bin/interp", "plain text\n")
    script(root, "/sbin/init", "#!/usr/bin/interp\n")
    reason = refused(root, "/sbin/init")
    assert expected in reason and "#! interpreter" in reason, reason


def test_script_interpreter_through_symlinks(root: pathlib.Path) -> None:
    link(root, "/usr/bin/sh", "../../bin/busybox")
    link(root, "/usr/local/bin/sh", "/usr/bin/sh")
    script(root, "/sbin/init", "#!/usr/local/bin/sh\n")
    assert runs(root, "/sbin/init").how.endswith("static")


def test_script_depth_is_bounded_like_the_kernel(root: pathlib.Path) -> None:
    prev = "/bin/sh"
    for i in range(1, ic.SCRIPT_DEPTH + 2):
        prev = script(root, f"/s{i}", f"#!{prev}\n")
    assert runs(root, f"/s{ic.SCRIPT_DEPTH}")
    assert "more than 5 #! scripts" in refused(root, f"/s{ic.SCRIPT_DEPTH + 1}")
    script(root, "/loop", "#!/loop\n")
    assert "more than 5 #! scripts" in refused(root, "/loop")


def test_dos_line_ending_is_refused(root: pathlib.Path) -> None:
    script(root, "/sbin/init", "#!/bin/sh\r\necho hi\r\n")
    assert "'/bin/sh\\x0d'" in refused(root, "/sbin/init")


def test_too_long_shebang_line(root: pathlib.Path) -> None:
    long_dir = "/" + "d" * 300
    script(root, "/sbin/init", f"#!{long_dir}/sh\n")
    assert "longer than 255 bytes" in refused(root, "/sbin/init")
    # A long argument is cut by the kernel, the interpreter's name is whole: runs.
    script(root, "/sbin/init", "#!/bin/sh " + "x" * 300 + "\n")
    assert runs(root, "/sbin/init")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"#!/bin/sh\n", ("/bin/sh", None)),
        (b"#! \t/bin/sh  -e -x  \n", ("/bin/sh", "-e -x")),
        (b"#!/bin/sh", ("/bin/sh", None)),  # no newline, short file
        (b"#!/bin/sh\0 -e\n", ("/bin/sh", None)),
        (b"#!/bin/sh -e\0junk\n", ("/bin/sh", "-e")),
        (b"#!/usr/bin/env python3\n", ("/usr/bin/env", "python3")),
        (b"#!/bin/" + b"x" * 300 + b" arg", None),
        (b"#!" + b" " * 300, None),
        (b"#!\n", None),
        (b"#!   \t\n/bin/sh\n", None),
    ],
)
def test_parse_shebang(line: bytes, expected: tuple[str, str | None] | None) -> None:
    if expected is None:
        with pytest.raises(ic.NotRunnable):
            ic.parse_shebang(line)
    else:
        assert ic.parse_shebang(line) == ic.Shebang(*expected)


# --- choosing among candidates ---


def test_explicit_init_refused_then_the_default_list(root: pathlib.Path) -> None:
    script(root, "/sbin/init", "#!/nonexistent/sh\n")
    script(root, "/etc/init", "#!/bin/sh\necho next\n")
    choice = ic.pick_init(str(root), "/sbin/custom", ACCEPT)
    assert choice.init.path == "/etc/init"
    assert [p for p, _ in choice.refused] == ["/sbin/custom", "/sbin/init"]
    assert "/nonexistent" in choice.refused[1][1]
    # /bin/sh is left to the rescue shell after a failed exec.
    assert choice.later == ("/bin/init",)


def test_relative_init_is_refused_and_the_list_tried(root: pathlib.Path) -> None:
    choice = ic.pick_init(str(root), "bin/busybox", ACCEPT)
    assert choice.refused[0] == ("bin/busybox", "'bin/busybox' is not an absolute path")
    assert choice.init.path == "/bin/sh"


def test_nothing_runnable(tmp_path: pathlib.Path) -> None:
    script(tmp_path, "/sbin/init", "#!/nonexistent/sh\n")
    with pytest.raises(ic.NotRunnable, match="no runnable init in the new root: .*/nonexistent"):
        ic.pick_init(str(tmp_path), None, ACCEPT)


def test_candidates_order() -> None:
    assert ic.candidates(None) == ic.INIT_CANDIDATES
    assert ic.candidates("/bin/sh") == ("/bin/sh", "/sbin/init", "/etc/init", "/bin/init")


def test_resolve_in_root(tmp_path: pathlib.Path) -> None:
    (tmp_path / "lib" / "systemd").mkdir(parents=True)
    (tmp_path / "lib" / "systemd" / "systemd").write_text("")
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin" / "init").symlink_to("/lib/systemd/systemd")
    (tmp_path / "sbin" / "rel").symlink_to("../lib/systemd/../systemd/systemd")
    (tmp_path / "sbin" / "loop").symlink_to("loop")
    (tmp_path / "sbin" / "up").symlink_to("../../etc/passwd")
    root = str(tmp_path)
    assert ic.resolve_in_root(root, "/sbin/init") == "/lib/systemd/systemd"
    assert ic.resolve_in_root(root, "/sbin/rel") == "/lib/systemd/systemd"
    with pytest.raises(ic.NotRunnable, match="too many levels"):
        ic.resolve_in_root(root, "/sbin/loop")
    with pytest.raises(ic.NotRunnable, match="escapes"):
        ic.resolve_in_root(root, "/sbin/up")


# --- the host kernel as the reference ---


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
