"""After a failed exec post-wipe: the root's /bin/sh, never a halt while it runs.

The real switch, wipe and respawned shell run in namespaces in
test_switchroot; here the decisions of ``boot.main``/``boot.fallback`` are
driven with stand-ins for the terminal states (halt, shells), which must
not run in a test process.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import NoReturn

import pytest

from init import boot, bootcfg, pid1, rescue, switchroot


class Ended(Exception):
    """Stands for a terminal state (halt, a shell loop) the test must not enter."""


def _end(name: str, calls: list[str]) -> Callable[..., NoReturn]:
    def terminal(*args: object, **kwargs: object) -> NoReturn:
        calls.append(name)
        raise Ended(name)

    return terminal


def test_rescue_shell_is_the_roots_sh() -> None:
    assert rescue.rescue_shell() == "/bin/sh"  # the host's, as / after the chroot


def test_rescue_shell_none_without_a_runnable_sh(tmp_path: pathlib.Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sh").write_text("#!/nonexistent\n")
    (tmp_path / "bin" / "sh").chmod(0o755)
    assert rescue.rescue_shell(root=str(tmp_path)) is None


def test_after_wipe_runs_the_shell() -> None:
    calls: list[str] = []
    with pytest.raises(Ended):
        rescue.after_wipe(run_shell=_end("shell", calls))
    assert calls == ["shell"]


@pytest.fixture
def terminals(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(pid1, "halt", _end("halt", calls))
    monkeypatch.setattr(pid1, "emergency_shell", _end("busybox-shell", calls))
    monkeypatch.setattr(boot, "record_state", lambda *a, **k: calls.append("state"))
    return calls


def _state(mosshell: bool) -> boot.BootState:
    return boot.BootState(bootcfg.BootConfig(mosshell=mosshell))


@pytest.mark.parametrize("mosshell", [False, True])
def test_fallback_after_the_wipe_runs_the_new_roots_shell(
    monkeypatch: pytest.MonkeyPatch, terminals: list[str], mosshell: bool
) -> None:
    """With or without mosshell: the initramfs busybox is gone, the root's sh is not."""
    monkeypatch.setattr(rescue, "rescue_shell", lambda: "/bin/sh")
    shells: list[str] = []
    monkeypatch.setattr(pid1, "emergency_shell", lambda shell="?": shells.append(shell))
    with pytest.raises(Ended):
        boot.fallback(_state(mosshell), "exec failed", wiped=True)
    # The real shell loop never returns; the stand-in does, and then comes halt.
    assert shells == ["/bin/sh"] and terminals == ["state", "halt"]


def test_fallback_after_the_wipe_halts_only_without_a_shell(
    monkeypatch: pytest.MonkeyPatch, terminals: list[str]
) -> None:
    monkeypatch.setattr(rescue, "rescue_shell", lambda: None)
    with pytest.raises(Ended):
        boot.fallback(_state(True), "exec failed", wiped=True)
    assert terminals == ["state", "halt"]


@pytest.mark.parametrize(("mosshell", "end"), [(True, "busybox-shell"), (False, "halt")])
def test_fallback_before_the_wipe_is_unchanged(
    terminals: list[str], mosshell: bool, end: str
) -> None:
    with pytest.raises(Ended):
        boot.fallback(_state(mosshell), "root not found")
    assert terminals == ["state", end]


def test_main_goes_to_the_rescue_at_once_after_the_wipe(monkeypatch: pytest.MonkeyPatch) -> None:
    tries: list[int] = []
    seen: dict[str, object] = {}

    def boot_once(state: boot.BootState) -> NoReturn:
        tries.append(1)
        raise switchroot.SwitchRootFailed("no init of the new root would exec")

    def fallback(state: boot.BootState, reason: str, *, wiped: bool = False) -> NoReturn:
        seen.update(reason=reason, wiped=wiped)
        raise Ended("fallback")

    monkeypatch.setattr(boot, "_setup", lambda state: None)
    monkeypatch.setattr(boot, "boot_once", boot_once)
    monkeypatch.setattr(boot, "fallback", fallback)
    with pytest.raises(Ended):
        boot.main()
    assert len(tries) == 1  # no retry: the initramfs is gone
    assert seen == {"reason": "SwitchRootFailed: no init of the new root would exec", "wiped": True}
