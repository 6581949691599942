"""Progress bars that stay readable in log files.

On a terminal, :func:`progress_bar` is plain ``tqdm``. When stderr is not a terminal (``nohup``
logs, CI, a pipe), tqdm would still redraw many times a second, and every redraw lands in the log;
there the bar refreshes at most once every ``LOG_INTERVAL_S`` seconds instead, so a long run
leaves a readable trail of progress lines.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, Optional

from tqdm import tqdm

#: Seconds between bar updates when stderr is not a terminal.
LOG_INTERVAL_S = 30.0


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def progress_bar(iterable: Optional[Iterable] = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, refreshing only every ``LOG_INTERVAL_S`` s off a terminal.

    An explicit ``mininterval`` in ``kwargs`` wins.
    """
    if not _is_terminal(kwargs.get("file") or sys.stderr):
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", max(LOG_INTERVAL_S, kwargs["mininterval"]))
    return tqdm(iterable, **kwargs)
