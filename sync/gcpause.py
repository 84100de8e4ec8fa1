"""One way to pause CPython's cyclic garbage collector around bulk work.

A sync of 100,000 users builds millions of long-lived, acyclic records (Graph users, directory
users, proposals). With the collector on, the allocations trigger passes that walk all of them
again and again (0.4 to 1.4 s per 100k run, measured). Inside ``cyclic_gc_paused()`` the collector
is off, for the whole process, so other tasks run without it too for that long. On the way
out, what was allocated meanwhile goes to the oldest generation as it is (``gc.freeze`` +
``gc.unfreeze``: two list splices, no traversal), so turning the collector back on does not
start with a pass over every record; cycles made meanwhile are found by the next full
collection. Nested uses are fine: only the outermost turns the collector back on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()
