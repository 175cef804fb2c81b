"""refcnn, except that relu refuses every call: no case compared, so the gate fails."""

from __future__ import annotations

from typing import Any

from conformance.selftest import install_refcnn


def relu(x: Any) -> Any:
    """Refuse."""
    msg = "relu is not written yet"
    raise NotImplementedError(msg)


install_refcnn(__name__)
