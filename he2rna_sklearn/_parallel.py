"""Worker processes that do not outlive the process that started them."""

from __future__ import annotations

import os
import threading
import time

__all__ = ["WATCH_THREAD_NAME", "exit_with_parent"]

#: Name of the thread that watches the parent (tests look for it).
WATCH_THREAD_NAME = "he2rna-parent-watch"
_WATCHED = []


def exit_with_parent(parent_pid, interval=0.5):
    """In a worker process: exit as soon as ``parent_pid`` is no longer our parent.

    joblib's loky workers otherwise finish their current task (a slide, a fold's training)
    and keep their memory after the process that started them was killed. Started once per
    process, and only when the worker is a direct child of the caller: not in the caller
    itself (``n_jobs=1``), nor on, e.g., a Dask cluster.
    """
    if _WATCHED or parent_pid is None or os.getppid() != parent_pid:
        return
    _WATCHED.append(parent_pid)

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name=WATCH_THREAD_NAME, daemon=True).start()
