"""The driver's objects held out of garbage collection while a local run is in flight.

A run's driver process holds everything it had before the run: the user's
specs, and the modules of Scythe, polars, pandera and the experiment. A full
collection in the driver walks all of it (tens of milliseconds once pandas and
pandera are loaded), and the run's allocation makes one likely: it is a
pause in the middle of allocating the run, or of reading its results.

:func:`hold` moves every object alive now into the permanent generation
(``gc.freeze()``, as Python's documentation recommends before forking workers:
collections no longer touch, and so copy, the memory pages the workers
share); :func:`release` gives them back once the run is over. Objects are
still freed by reference counting meanwhile, and cycles created during the run
are collected as usual; only garbage cycles that already existed wait for the
release. A process that froze objects itself is left alone.
"""

from __future__ import annotations

import gc
import threading

_LOCK = threading.Lock()
_HOLDS = 0


def hold() -> bool:
    """Freeze the objects alive now until the matching :func:`release`; False if not held."""
    global _HOLDS
    with _LOCK:
        if _HOLDS == 0 and gc.get_freeze_count():
            return False  # the program froze objects of its own: not ours to thaw
        gc.freeze()
        _HOLDS += 1
        return True


def release() -> None:
    """End one :func:`hold`; the last one gives the frozen objects back to the collector."""
    global _HOLDS
    with _LOCK:
        if _HOLDS == 0:
            return
        _HOLDS -= 1
        if _HOLDS == 0:
            gc.unfreeze()
