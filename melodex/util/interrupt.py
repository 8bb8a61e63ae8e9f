"""Ctrl-C as the end of a stream: what was produced before it is kept, and the caller is told."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UntilInterrupted(Generic[T]):
    """Iterate ``items`` until they end or Ctrl-C arrives while one is being made; a Ctrl-C ends
    the iteration quietly and sets :attr:`interrupted`, so a consumer (an indexer writing parts)
    finishes normally and keeps what it had. A Ctrl-C in the consumer's own code still propagates.
    """

    def __init__(self, items: Iterable[T]):
        self._items = items
        self.interrupted = False

    def __iter__(self) -> Iterator[T]:
        inner = iter(self._items)
        try:
            yield from inner
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()
