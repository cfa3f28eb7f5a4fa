"""One long-lived thread for CPU-bound training (LightGBM, PyTorch) in this process.

The engine applies resources on a pool of worker threads, a new pool per apply. LightGBM and PyTorch
parallelise with OpenMP, whose thread team belongs to the thread that calls it; two live teams (two
models on two threads, or a team left by an earlier caller) fight over the cores — their idle workers
spin — and on a 2-core machine each training ran 2-15x slower than alone (measured: 0.12 s alone,
0.28-1.9 s with a second live team). So every fit and predict of a trainer backend runs here, one at
a time, always on the same thread: one team, reused, using all cores. Other resources still apply in
parallel; only training is serialised, which is what one machine's cores allow anyway.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

__all__ = ["on_training_thread", "THREAD_NAME"]

THREAD_NAME = "ml-train"
_POOL: ThreadPoolExecutor | None = None
_GUARD = threading.Lock()


def on_training_thread(fn: Callable[..., Any], *args, **kwargs) -> Any:
    """Run ``fn`` on the training thread and return its result (exceptions propagate)."""
    global _POOL
    if threading.current_thread().name.startswith(THREAD_NAME):
        return fn(*args, **kwargs)
    with _GUARD:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        pool = _POOL
    return pool.submit(fn, *args, **kwargs).result()
