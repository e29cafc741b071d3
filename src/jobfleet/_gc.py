"""Holding off Python's cycle collector while a big job's objects are built."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["cycle_collector_paused"]


@contextlib.contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Run the block with the cycle collector off; back on afterwards if it was on.

    Building 100,000 subjobs (or reading 100,000 store rows) allocates container
    objects that all stay alive. Every few thousand allocations the collector
    runs, and its full collections walk everything alive, so it redoes the same
    useless work again and again: half of the time before the first subjob is
    written, at 100,000 subjobs. Reference counting still frees as usual; only
    garbage in reference cycles waits for the end of the block.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
