"""A netlink session: the caller's, or a fresh IPRoute closed afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pyroute2 import IPRoute


@contextlib.contextmanager
def session(ipr: Any = None) -> Iterator[Any]:
    if ipr is not None:
        yield ipr
        return
    with IPRoute() as own:
        yield own
