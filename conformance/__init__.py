"""Conformance suite of refcnn: Hypothesis comparisons against a float64 oracle and frameworks.

Run it with ``python -m conformance --impl MODULE [pytest options]``; see ``conftest.py`` for
the options and profiles, ``tolerance.py`` for the tolerance table.
"""
