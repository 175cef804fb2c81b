"""Time and memory of one call, for tests that bound what hostile input may cost.

:func:`run_within` runs a callable under a guard (the address space capped a few GiB above
what the process already maps, and an alarm) so that a call that would fill the machine
fails fast with ``MemoryError`` or ``TimeoutError`` instead, and reports its wall time and
peak memory: the rise of the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs`` before the call) where Linux allows that, else the peak that
``tracemalloc`` saw (NumPy reports its buffers to it).
"""

from __future__ import annotations

import contextlib
import resource
import signal
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

MIB = 2**20
#: How far above the current mappings a guarded call may map: five times the fuzzer's
#: 200 MB budget (so an overrun is measured, not cut short), small next to the machine.
ADDRESS_HEADROOM = 2**30
#: An alarm this long stops a runaway pure-Python loop: a last resort (budgets are 1 s, and
#: known slow calls are not run), since the exception lands wherever Python is then.
ALARM_SECONDS = 10

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class Cost(NamedTuple):
    """What one call cost, and how it ended."""

    seconds: float
    peak_bytes: int
    how: str  # "rss" (peak resident set rise) or "tracemalloc"
    result: Any
    error: BaseException | None


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    """Cap the address space and arm an alarm for the duration of one call."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    mapped = _status_kib("VmSize")
    capped = False
    if mapped is not None:
        cap = mapped * 1024 + ADDRESS_HEADROOM
        if hard == resource.RLIM_INFINITY or cap < hard:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
            capped = True
    alarmed = threading.current_thread() is threading.main_thread()
    previous: Any = None
    if alarmed:

        def _timeout(signum: int, frame: Any) -> None:
            msg = f"call still running after {ALARM_SECONDS} s"
            raise TimeoutError(msg)

        previous = signal.signal(signal.SIGALRM, _timeout)
        signal.alarm(ALARM_SECONDS)
    try:
        yield
    finally:
        if alarmed:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        if capped:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_within(call: Callable[[], Any], *, trace: bool = False) -> Cost:
    """Run ``call()`` under the guard; return its cost and its result or exception.

    ``trace=True`` measures with ``tracemalloc`` even where the RSS peak is available (for
    tests that want Python-level allocations, e.g. a ``bytes`` object the size of a file).
    """
    use_rss = not trace and _reset_peak_rss()
    base = _status_kib("VmRSS") if use_rss else None
    was_tracing = tracemalloc.is_tracing()
    if not use_rss:
        tracemalloc.start()
        tracemalloc.reset_peak()
    result: Any = None
    error: BaseException | None = None
    started = time.perf_counter()
    try:
        with _guard():
            result = call()
    except Exception as err:  # reported to the caller, who decides what was allowed
        error = err
    seconds = time.perf_counter() - started
    if use_rss:
        peak = max(((_status_kib("VmHWM") or 0) - (base or 0)) * 1024, 0)
        how = "rss"
    else:
        _, peak = tracemalloc.get_traced_memory()
        if not was_tracing:
            tracemalloc.stop()
        how = "tracemalloc"
    return Cost(seconds, peak, how, result, error)
