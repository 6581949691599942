"""One inference thread for the whole server.

Every model call runs on a single worker thread, so the model (and its device memory) is used by
one request at a time, whatever the number of HTTP threads; requests queue in front of it. Each
request waits for its job with a deadline: on time-out the job is cancelled if it has not started,
or asked to stop (``cancel_event``; video jobs check it between frames) if it has.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)

__all__ = ["InferenceWorker", "JobTimeout", "ServerBusy"]


class JobTimeout(TimeoutError):
    """The job did not finish within its deadline."""


class ServerBusy(RuntimeError):
    """Too many jobs are already waiting."""


class InferenceWorker:
    """Runs jobs one at a time on a dedicated thread.

    Args:
        max_pending: jobs allowed to wait or run at once; one more raises :class:`ServerBusy`.
    """

    def __init__(self, max_pending: int = 16):
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.max_pending = int(max_pending)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maskface-infer")
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def run(
        self,
        fn: Callable[[threading.Event], Any],
        timeout: Optional[float],
        cleanup: Optional[Callable[[], None]] = None,
    ) -> Any:
        """Run ``fn(cancel_event)`` on the worker thread and return its result.

        Args:
            fn: the job; it should return early when ``cancel_event`` is set.
            timeout: seconds to wait (queueing included); ``None`` waits forever.
            cleanup: called exactly once whatever happens: on the worker thread right after
                ``fn`` (even when the caller has stopped waiting), or on this thread when ``fn``
                never runs (server busy, or time-out while still queued). Use it to release what
                ``fn`` needs, such as its temporary files.

        Raises:
            ServerBusy: ``max_pending`` jobs are already queued or running.
            JobTimeout: the deadline passed.
            Exception: whatever ``fn`` raised.
        """
        cleanup = cleanup or (lambda: None)
        with self._lock:
            busy = self._pending >= self.max_pending
            if not busy:
                self._pending += 1
        if busy:
            cleanup()
            raise ServerBusy(f"{self.max_pending} requests are already queued or running")

        def job(cancel: threading.Event) -> Any:
            try:
                return fn(cancel)
            finally:
                cleanup()

        cancel = threading.Event()
        try:
            future: Future = self._executor.submit(job, cancel)
        except BaseException:
            self._done()
            cleanup()
            raise
        future.add_done_callback(lambda _f: self._done())
        try:
            return future.result(timeout=timeout)
        except (FutureTimeout, CancelledError):
            cancel.set()
            if future.cancel():  # never started, so its cleanup never ran either
                logger.warning("job dropped from the queue after %.1f s", timeout or 0.0)
                cleanup()
            else:
                logger.warning("job still running after %.1f s; asked it to stop", timeout or 0.0)
            raise JobTimeout(f"no result within {timeout:g} s") from None

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Block until no job is queued or running; False if ``timeout`` passed first."""
        with self._lock:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)
