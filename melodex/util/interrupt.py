"""Ctrl-C as the end of a stream: what was produced before it is kept, and the caller is told."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UntilInterrupted(Generic[T]):
    """Iterate ``items`` until they end or Ctrl-C arrives; a Ctrl-C ends the iteration quietly
    and sets :attr:`interrupted`, so a consumer (an indexer writing parts) finishes normally and
    keeps what it had.

    A Ctrl-C while an item is being made interrupts that work at once. A Ctrl-C while the
    consumer is busy with an item it was given (writing a part of the store, say) is held until
    the consumer asks for the next item, so that write is never cut in half. Holding needs the
    signal handler, which Python lets only the main thread set; elsewhere a Ctrl-C in the
    consumer's own code propagates as usual.

    ``ends``: exceptions that end the iteration the same way (a worker process that died, say);
    the one raised is kept in :attr:`ended_by` for the consumer to raise once it has kept its work.
    """

    def __init__(self, items: Iterable[T], ends: tuple[type[BaseException], ...] = ()):
        self._items = items
        self._ends = ends
        self.ended_by: BaseException | None = None
        self.interrupted = False
        self._producing = False
        self._pending = False

    def _on_sigint(self, signum, frame) -> None:
        if self._producing:
            raise KeyboardInterrupt
        self._pending = True  # the consumer is writing: stop once it asks for more

    def __iter__(self) -> Iterator[T]:
        inner = iter(self._items)
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            while not self._pending:
                self._producing = True
                try:
                    item = next(inner)
                except StopIteration:
                    return
                except KeyboardInterrupt:
                    self.interrupted = True
                    return
                except self._ends as exc:
                    self.ended_by = exc
                    return
                finally:
                    self._producing = False
                yield item
            self.interrupted = True
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            close = getattr(inner, "close", None)
            if close is not None:
                close()
