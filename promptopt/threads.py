"""Thread limits for small numeric work on few cores.

The engines' matrices are small: one BLAS / OpenMP thread is several times faster than several
threads fighting over shared cores (measured on 2 busy cores: a 250x384x32 product 0.15 ms vs
1.9 ms; one FAISS query over 100k x 384 vectors p50 11 ms vs 48 ms). threadpoolctl (a declared
dependency) sets the limit for the duration of a block.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None
_lock = threading.Lock()


def single_thread(user_api: str) -> contextlib.AbstractContextManager[Any]:
    """Limit ``user_api`` ("blas" or "openmp") to one thread inside the block."""
    global _controller
    with _lock:
        if _controller is None:
            # Scans the loaded libraries once; entering a limit afterwards is cheap.
            _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api=user_api)  # type: ignore[no-any-return]
