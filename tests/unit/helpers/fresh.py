"""``fresh(obj)`` is ``obj``, read through a call, for mypy's sake.

After ``assert m.state is State.A`` mypy keeps ``m.state`` narrowed to ``A``
across the method calls that change it, so a later ``m.state is State.B``
looks unreachable. ``fresh(m).state`` is not the narrowed expression: it is
checked against the attribute's declared type.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def fresh(obj: T) -> T:
    return obj
