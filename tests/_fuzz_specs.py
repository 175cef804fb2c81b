"""What the docstrings say about array shapes, read once per function for the fuzzer.

The house style states every array parameter's shape in its NumPy docstring
(``x : ndarray, shape (N, H, W, C)``, ``dy : ndarray, shape of x``,
``input_shape : (N, H, W, C)``). Those statements are the contract the fuzzer holds a call
to: a symbol shared by two parameters (``C`` in ``x`` and in ``w``) must take one value, a
fixed-length shape fixes the rank, ``shape of x`` ties two shapes together. A shape this
parser cannot read (``(N, *spatial, C)`` past the star, ``C // groups``) simply constrains
less: the fuzzer then treats the corresponding corruptions as maybe-valid.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import refcnn

__all__ = ["Spec", "parameter_docs", "shape_specs"]

_SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}$", re.MULTILINE)
_ENTRY = re.compile(r"^(\w[\w, ]*?)(?: : (.*))?$")
_SHAPE = re.compile(r"shape \(([^()]*)\)")
_LEADING_TUPLE = re.compile(r"^\(([^()]*)\)")
_SAME_AS = re.compile(r"shape of (?:``)?(\w+)(?:``)?")
# Type lines of parameters whose shape a docstring states (not e.g. a reduction's options).
_SHAPED = re.compile(r"^(ndarray|\(|tuple of int|sequence of int)")
_REFERENCE = re.compile(r":func:`~?(?:refcnn\.)?(\w+)`")
_SYMBOL = re.compile(r"[A-Za-z_]\w*")


class Spec(NamedTuple):
    """The shape a docstring states for one parameter.

    ``head`` are the symbols of the leading axes (``None`` for one that is not a plain
    symbol), ``tail`` those after a ``*`` entry, counted from the end; ``rank`` is the number
    of axes when the shape has no ``*`` entry. ``same_as`` names a parameter whose shape this
    one must have; ``min_ndim`` is 1 for "ndim >= 1".
    """

    head: tuple[str | None, ...] = ()
    tail: tuple[str | None, ...] = ()
    rank: int | None = None
    same_as: str | None = None
    min_ndim: int = 0

    def symbols(self, ndim: int) -> dict[int, str]:
        """Axis index -> symbol, for a value with ``ndim`` axes."""
        placed = {i: s for i, s in enumerate(self.head) if s is not None}
        placed |= {ndim - len(self.tail) + i: s for i, s in enumerate(self.tail) if s is not None}
        return {i: s for i, s in placed.items() if 0 <= i < ndim}


def parameter_docs(function: Callable[..., Any]) -> dict[str, tuple[str, str]]:
    """The ``Parameters`` section of a NumPy docstring: name -> (type line, description)."""
    doc = inspect.getdoc(function) or ""
    headers = list(_SECTION.finditer(doc))
    docs: dict[str, tuple[str, str]] = {}
    for position, header in enumerate(headers):
        if header.group(1) != "Parameters":
            continue
        end = headers[position + 1].start() if position + 1 < len(headers) else len(doc)
        names: list[str] = []
        for line in doc[header.end() : end].splitlines():
            if not line.strip():
                continue
            if line[0] != " ":
                entry = _ENTRY.match(line)
                names = [n.strip() for n in entry.group(1).split(",")] if entry else []
                for name in names:
                    docs[name] = ((entry.group(2) or "") if entry else "", "")
            else:
                for name in names:
                    kind, text = docs[name]
                    docs[name] = (kind, f"{text} {line.strip()}".strip())
    return docs


def _tokens(inner: str) -> Spec:
    head: list[str | None] = []
    tail: list[str | None] = []
    star = False
    for raw in (t.strip() for t in inner.split(",")):
        if not raw:
            continue
        if raw.startswith("*") or raw == "...":
            star = True
            continue
        symbol = raw if _SYMBOL.fullmatch(raw) else None
        (tail if star else head).append(symbol)
    return Spec(tuple(head), tuple(tail), None if star else len(head))


def _spec(name: str, kind: str, text: str, names: set[str]) -> Spec | None:
    if not _SHAPED.match(kind):
        return None
    text = f"{kind} {text}"
    if "at ``axis``" in text:
        return None  # the axis that holds the named dimension moves with `axis`
    same = _SAME_AS.search(text)
    if same and same.group(1) in names and same.group(1) != name:
        return Spec(same_as=same.group(1))
    match = _SHAPE.search(text) or _LEADING_TUPLE.match(text)
    if match:
        return _tokens(match.group(1))
    if "ndim >= 1" in text:
        return Spec(min_ndim=1)
    return None


def shape_specs(function: Callable[..., Any]) -> dict[str, Spec]:
    """Parameter name -> :class:`Spec`, following "As given to :func:`f`" to ``f``'s docstring."""
    docs = parameter_docs(function)
    names = set(docs)
    specs: dict[str, Spec] = {}
    for name, (kind, text) in docs.items():
        spec = _spec(name, kind, text, names)
        reference = _REFERENCE.search(text)
        if spec is None and reference and hasattr(refcnn, reference.group(1)):
            other = getattr(refcnn, reference.group(1))
            if other is not function:
                spec = shape_specs(other).get(name)
        if spec is not None:
            specs[name] = spec
    return specs
