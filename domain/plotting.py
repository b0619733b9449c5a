"""matplotlib on the Agg backend, imported by the first chart a process draws.

It costs a bot replica about a third of a second of start-up and ~20 MB it may
never need (most replicas draw no chart for a long while), so the chart
modules reach it through ``matplotlib()`` instead of importing it at the top.
"""

from __future__ import annotations

import functools
import threading
from types import ModuleType

_lock = threading.Lock()  # charts render in worker threads: configure the backend once


@functools.cache
def matplotlib() -> ModuleType:
    """The ``matplotlib`` package with ``figure``, ``patches`` and ``ticker`` loaded, on the Agg backend."""
    with _lock:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.figure
        import matplotlib.patches
        import matplotlib.ticker  # noqa: F401 (loaded for the callers: mpl.ticker)

        return mpl
