"""Committing a submission's batches to the store from a second thread, in order."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from types import TracebackType

__all__ = ["BatchRecorder"]

log = logging.getLogger("jobfleet.fleet.recorder")

#: Batches waiting to be committed before the preparing thread waits too: keeps what
#: has been prepared but not yet recorded small (a resume prepares those again).
_MAX_WAITING = 2

Pairs = Sequence[tuple[int, str]]


class BatchRecorder:
    """Hands each batch of submitted units to ``commit`` on a thread of its own.

    Preparing a unit is mostly system calls and committing a batch mostly
    SQLite, and both release the interpreter lock: with the commits on a
    second thread, one batch is written to the store while the next one is
    being prepared (at 100,000 subjobs the commits took a tenth of the time).
    Batches are committed in the order given. The first error of ``commit`` is
    raised by the next :meth:`record` or at the end of the ``with`` block, and
    nothing after it is committed. Leaving the block waits until every batch
    given before has been committed, also when the block raised.
    """

    def __init__(self, commit: Callable[[Pairs], None]) -> None:
        self._commit = commit
        self._waiting: queue.Queue[Pairs | None] = queue.Queue(_MAX_WAITING)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="jobfleet-record", daemon=True)
        self._thread.start()

    def record(self, pairs: Pairs) -> None:
        """Queue one batch (a :data:`~jobfleet.fleet.driver.RecordSubmitted` callback)."""
        self._raise_error()
        self._waiting.put(list(pairs))

    def __enter__(self) -> BatchRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._waiting.put(None)
        self._thread.join()
        if exc is None:
            self._raise_error()
        elif self._error is not None:
            log.error("recording a batch failed as well: %s", self._error)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (pairs := self._waiting.get()) is not None:
            if self._error is not None:
                continue  # drain: after a failed commit nothing later may be recorded
            try:
                self._commit(pairs)
            except BaseException as err:  # handed to the submitting thread
                self._error = err
