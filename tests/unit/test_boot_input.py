"""PID 1's command-line path against hostile input (issue 13, points 1 and 2).

The path under test is the one ``init.boot._setup`` runs: read the raw
bytes of /proc/cmdline (``cmdsetup.read_kernel_line``), decide the console
echo from their split (``console.kernel_echoes_info``), then merge the baked line and
build every configuration (``cmdsetup.configure``). The generated lines
(tests/unit/helpers/hostile_cmdline.py) hold one valid parameter of every
kind PID 1 reads among arbitrary bytes and wholly invalid occurrences of
the same keys; every valid parameter must still take effect, every hostile
one must be reported once by name, and every log line must stay one
printable line.

Two engines, as for the DHCP fuzz: a seeded loop of MOSNET_CMDLINE_CASES
cases (default 100_000, a few tenths of a millisecond each) and hypothesis
for shrinking. Each parser is also called on its own with arbitrary values:
only ParamError may leave it.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from init import bootcfg, cmdsetup, netrootcfg
from mosnet.base import log
from mosnet.base.errors import ParamError
from mosnet.config import cmdline, cmdmerge, console, kcmdline
from mosnet.config.model import NetConfig
from tests.unit.helpers import hostile_cmdline as hc

CASES = int(os.environ.get("MOSNET_CMDLINE_CASES", "100000"))
EXAMPLES = int(os.environ.get("MOSNET_FUZZ_EXAMPLES", "1000"))
_FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None  # a file per case: tmpfs
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


class _Lines:
    """The real console handler (mosnet.base.log) writing into a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.logger = logging.getLogger("hostile.console")  # one logger, one handler at a time
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.handlers[:] = [log._FdHandler(self.fd, kmsg=False)]  # the handler PID 1 uses

    def take(self) -> list[str]:
        os.lseek(self.fd, 0, os.SEEK_SET)
        data = os.read(self.fd, 1 << 20)
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        return data.decode("utf-8").splitlines()

    def close(self) -> None:
        self.logger.handlers[:] = []
        os.close(self.fd)


def run_case(case: hc.Case, tmp: Path, out: _Lines) -> list[str]:
    """The setup path of PID 1 on one case; returns what failed."""
    cmdline_file, baked_file = tmp / "cmdline", tmp / "baked"
    cmdline_file.write_bytes(case.kernel)
    if case.baked is None:
        baked_file.unlink(missing_ok=True)
    else:
        baked_file.write_bytes(case.baked)
    raw, problem = cmdsetup.read_kernel_line(str(cmdline_file))
    echo = console.kernel_echoes_info(raw.line)
    inp = cmdsetup.configure(raw, out.logger, str(baked_file))
    level, _ = console.console_loglevel(inp.merged.line)  # loglevel= is never baked
    assert echo is (level > console.INFO_LEVEL)
    failed = [name for name, check in case.checks if not check(inp, level)]
    failed += _check_errors(inp, case)
    failed += _check_log(out.take(), inp)
    return failed + ([problem] if problem else [])


def _check_errors(inp: cmdsetup.BootInput, case: hc.Case) -> list[str]:
    bad = [f"{e}" for e in inp.errors if "internal error" in e.expected]
    bad += [f"unknown parameter {e.param}" for e in inp.errors if e.param not in hc.KNOWN_KEYS]
    if len(inp.errors) < case.hostile:
        bad.append(f"{case.hostile} hostile occurrences, {len(inp.errors)} reported")
    return bad


def _check_log(lines: list[str], inp: cmdsetup.BootInput) -> list[str]:
    bad = [f"not one printable line: {line!r}" for line in lines if not line.isprintable()]
    warned = [line for line in lines if "ignoring kernel parameter" in line]
    unique = list(dict.fromkeys(str(e) for e in inp.errors))  # repeats: one line, "(N times)"
    if len(warned) != len(unique):
        bad.append(f"{len(unique)} distinct errors but {len(warned)} warning lines")
    errors = list({str(e): e for e in inp.errors}.values())
    for err, line in zip(errors, warned, strict=False):
        if f"ignoring kernel parameter {err.param}: bad value " not in line:
            bad.append(f"warning line does not name {err.param}: {line!r}")
    return bad


def _run_cases(first: int, count: int) -> list[str]:
    """Cases ``first`` .. ``first + count - 1``; the first few failures, described."""
    failures: list[str] = []
    with tempfile.TemporaryDirectory(dir=_FAST_TMP) as d:
        out = _Lines(Path(d) / "console")
        try:
            for n in range(first, first + count):
                case = hc.make_case(random.Random(n))
                failed = run_case(case, Path(d), out)
                if failed and len(failures) < 3:
                    failures.append(
                        f"case {n}: {failed}\nkernel {case.kernel!r}\nbaked {case.baked!r}"
                    )
        finally:
            out.close()
    return failures


def test_every_valid_parameter_survives_hostile_lines() -> None:
    """CASES generated lines, split over both cores (CI runs the tests one at a time)."""
    workers = 2
    share = -(-CASES // workers)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.starmap(_run_cases, [(w * share, share) for w in range(workers)])
    failures = [f for result in results for f in result]
    assert not failures, "\n".join(failures)


@FUZZ
@given(st.integers(0, 2**64))
def test_hostile_lines_shrink(seed: int) -> None:
    assert not _run_cases(seed, 1)


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("hostile.quiet")
    logger.propagate = False
    logger.handlers[:] = [logging.NullHandler()]
    return logger


@pytest.mark.parametrize("key", sorted(hc.HOSTILE))
def test_each_hostile_value_is_refused_as_a_whole(key: str) -> None:
    """The generator's premise: each hostile occurrence sets nothing and is reported."""
    for value in hc.HOSTILE[key]:
        inp = cmdsetup.configure(kcmdline.to_bytes(f"{key}={value}"), _quiet_logger(), "/none")
        assert [e.param for e in inp.errors] == [key], value
        assert inp.net == NetConfig(), value
        boot = dataclasses.replace(inp.boot, netroot_error=None)
        assert boot == bootcfg.BootConfig(), value


_TEXT = st.text(
    st.one_of(
        st.sampled_from("0123456789abcdef.,:/=-[]%@ \"'"),
        st.characters(codec="utf-8"),
        st.sampled_from(["\udcff", "\udcc3", "²", "٣", "１", "\x00", "\x1b", "\xa0"]),
    ),
    max_size=60,
)


@FUZZ
@given(st.sampled_from(sorted(bootcfg.HANDLERS)), st.one_of(st.none(), _TEXT))
def test_boot_parsers_raise_only_param_error(key: str, value: str | None) -> None:
    handler = bootcfg.HANDLERS[key]  # the handler itself, without the dispatcher's net
    try:
        handler(bootcfg.BootConfig(), kcmdline.Param(key, value))
    except ParamError:
        pass


@FUZZ
@given(st.sampled_from(sorted(cmdline.HANDLERS)), _TEXT)
def test_network_parsers_raise_only_param_error(key: str, value: str) -> None:
    try:
        cmdline.HANDLERS[key](value, cmdline._Builder())
    except ParamError:
        pass


@FUZZ
@given(_TEXT, st.one_of(st.none(), _TEXT), st.one_of(st.none(), st.floats()))
def test_netroot_parsers_raise_only_param_error(
    url: str, digest: str | None, timeout: float | None
) -> None:
    for call in (
        lambda: netrootcfg.parse_url(url),
        lambda: netrootcfg.parse_nfs(url),
        lambda: netrootcfg.parse_nfs(url, nfs4=True, param="nfsroot"),
        lambda: netrootcfg.make_netroot(url, digest, timeout),
        lambda: netrootcfg.parse_sha256(digest),
    ):
        try:
            call()
        except ParamError:
            pass


@FUZZ
@given(_TEXT, _TEXT)
def test_merge_split_and_loglevel_never_raise(baked: str, kernel: str) -> None:
    merged = cmdmerge.merge(baked, kernel)
    console.console_loglevel(merged.line)
    kcmdline.parse_line(kernel)
    cmdmerge.render(merged.line.params, merged.line.init_args)
    cmdmerge.state_section(merged)
