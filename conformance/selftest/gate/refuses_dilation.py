"""refcnn, except that conv2d refuses dilated cases with NotImplementedError.

The gate must count those refusals (with their arguments) and keep testing conv2d on the
undilated cases, which pass.
"""

from __future__ import annotations

from typing import Any

import refcnn
from conformance.selftest import install_refcnn


def conv2d(x: Any, w: Any, b: Any = None, **kwargs: Any) -> Any:
    """refcnn.conv2d, refusing every dilation but 1."""
    dilations = kwargs.get("dilations", 1)
    if dilations not in (1, (1, 1)):
        msg = f"dilations={dilations!r} not supported yet"
        raise NotImplementedError(msg)
    return refcnn.conv2d(x, w, b, **kwargs)


install_refcnn(__name__)
