"""Self-test of the conformance harness: a zoo of deliberately wrong implementations.

Every module in :mod:`conformance.selftest.mutants` is a complete refcnn-API implementation
(every public refcnn name, copied in by :func:`install_refcnn`) in which exactly ONE function
is replaced by a version carrying ONE realistic bug, of the kind tutorials, ports and
reference implementations really ship. Each bug is subtle: the mutant agrees with refcnn on
the easy, common cases (stride 1, no padding, square shapes, the default axis, random data
without ties), so only a harness whose generators reach the corner and whose tolerances are
tight rejects it. ``tests/test_selftest_zoo.py`` runs the harness on every mutant and
requires it to fail, and on refcnn itself and requires it to pass.

Each mutant module defines:

- a docstring: the bug, where such a bug was seen in the wild, and which case exposes it;
- ``TARGET``: the conformance test function that must reject it (``"test_<function>"``);
- ``K_EXPR``: a ``pytest -k`` expression selecting only that function.

The helpers below are the shared, bug-free plumbing (array views and padding) the mutants
use for their unchanged parts; they are written independently of refcnn's private code so a
refactor of refcnn cannot silently change a mutant.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

import refcnn

__all__ = ["classic_form", "install_refcnn", "pad_hw", "pair", "scatter_tap", "window_view"]

Array = npt.NDArray[Any]


def install_refcnn(module_name: str) -> None:
    """Give module ``module_name`` every public refcnn name it does not define itself.

    Call it at the bottom of a mutant module (``install_refcnn(__name__)``) so the mutant's
    own definition of its target function wins and everything else is refcnn's.
    """
    module = sys.modules[module_name]
    for name in refcnn.__all__:
        if name not in vars(module):
            setattr(module, name, getattr(refcnn, name))
    if "__all__" not in vars(module):
        module.__all__ = sorted(refcnn.__all__)  # type: ignore[attr-defined]


F = TypeVar("F", bound=Callable[..., Any])

#: Keywords the classic 2-D NHWC API did not have (all for pooling; data_format and groups
#: for convolution), and their defaults there.
_NEW_KEYWORDS = {
    "dilations": (1, (1, 1)),
    "ceil_mode": (False,),
    "data_format": (None, "NHWC"),
    "groups": (1,),
}


def _is_classic(name: str, value: Any) -> bool:
    defaults = _NEW_KEYWORDS[name]
    return any(value is d or (type(value) is type(d) and value == d) for d in defaults)


def classic_form(
    correct: Callable[..., Any], new: tuple[str, ...] = tuple(_NEW_KEYWORDS)
) -> Callable[[F], F]:
    """Keep a mutant's bug in the classic 2-D NHWC form of its function.

    The mutant is written against the tutorial API (no dilation for pooling, no ceil mode,
    no channels-first layout, no groups); a call that uses one of those keywords beyond its
    classic default goes to ``correct`` (refcnn's function), so the mutant still accepts
    every call of the current API and is wrong exactly where its docstring says. ``new``
    names the keywords that are new for this function.
    """

    def decorate(mutant: F) -> F:
        @functools.wraps(mutant)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            extras = {k: kwargs.pop(k) for k in list(kwargs) if k in new}
            if all(_is_classic(k, v) for k, v in extras.items()):
                return mutant(*args, **kwargs)
            return correct(*args, **kwargs, **extras)

        return wrapper  # type: ignore[return-value]

    return decorate


def pair(value: Any) -> tuple[int, int]:
    """An int or an ``(h, w)`` pair of ints as a pair (no validation: refcnn validates)."""
    if isinstance(value, int | np.integer):
        return (int(value), int(value))
    first, second = value
    return (int(first), int(second))


def pad_hw(x: Array, pads: tuple[tuple[int, int], tuple[int, int]], value: Any = 0) -> Array:
    """Pad axes 1 and 2 of an NHWC array with the constant ``value``."""
    (top, bottom), (left, right) = pads
    widths = ((0, 0), (top, bottom), (left, right), (0, 0))
    return np.pad(x, widths, mode="constant", constant_values=value)


def window_view(
    xp: Array,
    kernel_hw: tuple[int, int],
    out_hw: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int] = (1, 1),
) -> Array:
    """Read-only view ``(N, OH, OW, KH, KW, C)`` of the windows of a padded NHWC array."""
    sn, sh, sw, sc = xp.strides
    shape = (xp.shape[0], out_hw[0], out_hw[1], kernel_hw[0], kernel_hw[1], xp.shape[3])
    view_strides = (
        sn,
        sh * strides[0],
        sw * strides[1],
        sh * dilations[0],
        sw * dilations[1],
        sc,
    )
    return as_strided(xp, shape=shape, strides=view_strides, writeable=False)


def scatter_tap(
    dxp: Array,
    offset: tuple[int, int],
    values: Array,
    strides: tuple[int, int],
) -> None:
    """``dxp[:, r0 + i*sh, c0 + j*sw, :] += values[:, i, j, :]`` for every output ``(i, j)``."""
    oh, ow = values.shape[1:3]
    if oh == 0 or ow == 0:
        return
    (r0, c0), (sh, sw) = offset, strides
    dxp[:, r0 : r0 + (oh - 1) * sh + 1 : sh, c0 : c0 + (ow - 1) * sw + 1 : sw, :] += values
