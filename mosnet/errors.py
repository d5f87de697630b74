"""Typed errors shared by every parser in mosnet and init."""

from __future__ import annotations


class MosnetError(Exception):
    """Base class of every error mosnet raises on purpose."""


class ParamError(MosnetError, ValueError):
    """A kernel or CLI parameter had a value we cannot use.

    It names the parameter, the offending token and the form we expected, so
    one log line is enough for a user to fix their command line.
    """

    def __init__(self, param: str, token: str, expected: str) -> None:
        self.param = param
        self.token = token
        self.expected = expected
        super().__init__(f"{param}: bad value {token!r}, expected {expected}")
