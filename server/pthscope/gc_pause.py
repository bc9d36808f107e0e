"""`gc_paused()`: no cyclic garbage collection while building big, all-live object graphs.

Reading a checkpoint (and decoding its JSON) allocates hundreds of thousands of objects that all
stay in use; the collector's passes over them find nothing and cost a quarter to a third of the
time. Collection resumes, catching up on anything cyclic, when the block ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
