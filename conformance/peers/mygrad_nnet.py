"""MyGrad as an ``--impl``: its ``nnet`` forwards, every backward from its autograd.

MyGrad (``mygrad.nnet``) is a NumPy autograd library with PyTorch's layouts (NCHW data,
OIHW filters, symmetric integer padding). :mod:`conformance.peers._mygrad_forwards` wraps
its functions with :func:`conformance.adapt.torch_style`; this module hands them to
:class:`conformance.frameworks.Adapter`, which derives each backward function of refcnn's
API from the forwards with MyGrad's ``Tensor.backward``, exactly as it does for PyTorch's
``autograd.grad``. The forwards are the N-d ``conv`` and ``max_pool`` (MyGrad's ``conv_nd``
and ``max_pool`` take 1 to 3 spatial axes), so ``conv2d``, ``max_pool3d`` and every
convolution and max-pool gradient derive from them. The functions MyGrad has no route for
are absent ("not implemented"): transposed convolution, average and global pooling,
``max_pool_with_argmax``, flatten, the cross-entropy of probabilities, ``softmax_backward``
and ``softmax_jacobian`` (see ``_mygrad_forwards.LIMITS``). Cases MyGrad's API cannot say
(asymmetric pads, groups, padded, dilated or ceil-mode max pooling, weighted or smoothed
losses) raise ``NotImplementedError``.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any

from conformance.frameworks import Adapter, AdapterInfo
from conformance.peers import _mygrad_forwards

__version__ = importlib.metadata.version("mygrad")

_API = Adapter(
    _mygrad_forwards,
    AdapterInfo("mygrad", _mygrad_forwards.__name__, "mygrad", ("mygrad",), ("cpu",)),
)


def __getattr__(name: str) -> Callable[..., Any]:
    # PEP 562: refcnn's function names, each MyGrad's forward or its derived backward.
    function = _API.function(name) if not name.startswith("_") else None
    if function is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return function
