"""Child processes that must not outlive their parent (``andon serve``'s twin job workers
and its plant-model parser)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, *, with_thread: bool = True) -> None:
    """Process-pool initializer (twin job workers, the plant-model parser): the worker ends
    when ``andon serve`` (pid ``parent``) dies, even by ``kill -9``. Left alone, a worker
    blocks forever on its task queue (it holds both ends of the pipe itself) and keeps its
    memory (300-400 MB for a twin worker).

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, the kernel kills it the moment its parent
    thread ends (pools are started from the event loop's thread, which lives as long as the
    service). Elsewhere, and as a second guard, a thread checks the parent pid every second.
    ``with_thread=False`` for a pool that any thread may start (a process-wide pool): the
    kernel's signal follows the starting *thread*, so a pool started by a short-lived thread
    would lose its workers with that thread; the parent-pid watch alone then ends the worker
    within a second of its parent's death.
    """
    if with_thread and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="andon-parent-watch", daemon=True).start()
