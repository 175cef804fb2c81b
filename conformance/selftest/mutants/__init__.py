"""The mutant zoo: one module per deliberately wrong implementation (see the parent package).

Modules are discovered with :func:`pkgutil.iter_modules`, so adding a file adds a test case.
"""
