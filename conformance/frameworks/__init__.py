"""Framework adapters: refcnn's API implemented with a framework, NumPy arrays in and out.

Each adapter module (``torch``, ``tensorflow``) exposes refcnn's public functions with the
same names and signatures (NHWC data, HWIO filters, TensorFlow argument names), keeps the
input dtype, and never modifies its inputs. All layout transposes and padding translation
live in the adapters; pads come from :mod:`refcnn.padding`. Gradients come from the
framework's autograd applied to its own forward op with the caller's upstream gradient.

A case the framework cannot express (or mishandles: crashes, wrong shapes, uninitialized
memory) raises :class:`NotExpressible`, which the conformance harness counts; an adapter
never silently returns something else. Importing this package imports no framework.
"""

from __future__ import annotations

__all__ = ["NotExpressible"]


class NotExpressible(Exception):  # noqa: N818 - the name the harness and reports use
    """The framework cannot faithfully compute this case; the message says exactly what."""
