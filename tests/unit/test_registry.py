"""The registry of kernel parameters against the parsers that read them.

Each parameter has a handler in exactly its owner's parser, no parser has a
handler the registry does not know, and what the registry says about a
parameter (form, expected text, yes/no words, bakeable) is what the parser
does with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from init import bootcfg
from initramfs import baked
from mosnet.base.errors import ParamError
from mosnet.config import cmdline, console, registry
from mosnet.config.kcmdline import parse_line

HANDLERS: Mapping[registry.Owner, Mapping[str, object]] = {
    "net": cmdline.HANDLERS,
    "boot": bootcfg.HANDLERS,
    "console": console.HANDLERS,
}


def errors_of(owner: str, text: str) -> tuple[ParamError, ...]:
    """What the owner's parser reports for a line."""
    parse: dict[str, Callable[[], tuple[ParamError, ...]]] = {
        "net": lambda: cmdline.parse(text).errors,
        "boot": lambda: bootcfg.parse(text)[1],
        "console": lambda: console.console_loglevel(parse_line(text))[1],
    }
    return parse[owner]()


@pytest.mark.parametrize("name", sorted(registry.PARAMETERS))
def test_each_parameter_has_a_handler_in_its_owners_parser_only(name: str) -> None:
    owners = [owner for owner, handlers in HANDLERS.items() if name in handlers]
    assert owners == [registry.PARAMETERS[name].owner]


@pytest.mark.parametrize("owner", sorted(HANDLERS))
def test_no_handler_without_a_registry_entry(owner: registry.Owner) -> None:
    assert set(HANDLERS[owner]) == registry.owned_by(owner)


@pytest.mark.parametrize("name", sorted(registry.PARAMETERS))
def test_a_wrong_form_is_an_error_with_the_expected_text_or_skipped(name: str) -> None:
    entry = registry.PARAMETERS[name]
    wrong = {"flag": f"{name}=1", "value": name, "both": None}[entry.form]
    if wrong is None:
        return
    errors = errors_of(entry.owner, wrong)
    if not entry.strict:
        assert errors == ()
        return
    assert [(e.param, e.expected) for e in errors] == [(name, entry.expected)]


@pytest.mark.parametrize("name", sorted(n for n, p in registry.PARAMETERS.items() if p.boolean))
def test_every_yes_no_parameter_takes_the_same_words(name: str) -> None:
    owner = registry.PARAMETERS[name].owner
    read: Callable[[str], bool] = {
        "mosdhcp_prefer_private": lambda t: cmdline.parse(t).config.dhcp.prefer_private,
        "mosshell": lambda t: bootcfg.parse(t)[0].mosshell,
        "mosdebug": lambda t: bootcfg.parse(t)[0].mosdebug,
        "rd.neednet": lambda t: cmdline.parse(t).config.network,
        "rd.peerdns": lambda t: cmdline.parse(t).config.peerdns,
        "rd.bootif": lambda t: cmdline.parse(t).config.use_bootif,
    }[name]
    for word, meaning in registry.BOOL_WORDS.items():
        for spelled in (word, word.upper()):
            assert errors_of(owner, f"{name}={spelled}") == (), spelled
            # after the opposite, so the default cannot pass for the word
            assert read(f"{name}={'no' if meaning else 'yes'} {name}={spelled}") is meaning
    assert [e.param for e in errors_of(owner, f"{name}=maybe")] == [name]


def test_only_bakeable_parameters_can_be_baked() -> None:
    for name, entry in registry.PARAMETERS.items():
        token = name if entry.form == "flag" else f"{name}=1"
        try:
            baked.check(token)
        except baked.BakedLineError as exc:
            refused = "is not a parameter mosnet-init reads" in str(exc)
        else:
            refused = False
        assert refused is not entry.bakeable, name


@pytest.mark.parametrize("name", sorted(n for n in registry.PARAMETERS if n.startswith("mos")))
def test_no_registered_mos_parameter_is_a_typo_to_the_network_parser(name: str) -> None:
    assert not any("unknown parameter" in note for note in cmdline.parse(f"{name}=x").notes)


def test_an_unregistered_mos_parameter_is_noted_as_a_typo() -> None:
    assert "unknown parameter 'mosfirewal' ignored (typo?)" in cmdline.parse("mosfirewal=x").notes
