"""Peers: third-party NumPy implementations judged by the suite, each an ``--impl`` module.

- :mod:`conformance.peers.onnx_reference`: ONNX's reference evaluator
  (``onnx.reference.ReferenceEvaluator``), one node per function, forwards only.
- :mod:`conformance.peers.numpy_ml_nn`: numpy-ml's ``neural_nets`` layers and activations,
  forwards and their own backward passes.
- :mod:`conformance.peers.mygrad_nnet`: MyGrad's ``nnet`` functions (PyTorch-style, NCHW)
  through :mod:`conformance.adapt`, the backward functions from MyGrad's autograd.

Run one with ``python -m conformance --impl conformance.peers.onnx_reference --framework
none``. Each adapter translates refcnn's API into the peer's own vocabulary without doing
the peer's work: the peer pads, pools and reduces; a case the peer's API cannot say, or whose
documented convention differs from refcnn's, raises ``NotImplementedError`` with the reason
(counted by the suite, never faked). What the runs found, each finding checked by hand and
against PyTorch and TensorFlow, is pinned in ``conformance/peers/test_peer_findings.py``.
"""
