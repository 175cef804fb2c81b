"""Implementations that probe the gate's semantics (not bugs of one function, as the zoo is).

``tests/test_gate.py`` runs the harness on each and checks the verdict: an empty module must
fail the gate, a per-case refusal must be counted while the function keeps being tested, a
layout-dependent result must be caught, warnings must not hide values, distinct failures
must all be reported.
"""
