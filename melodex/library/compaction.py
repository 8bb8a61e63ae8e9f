"""Which store parts :meth:`~melodex.library.store.LibraryStore.compact` merges (no I/O here)."""

from __future__ import annotations

from pathlib import Path

Part = tuple[int, int, Path]  # first sequence number, last sequence number, file


def merge_groups(parts: list[tuple[int, int, Path, int]], target_rows: int) -> list[list[Part]]:
    """Runs of consecutive small parts to merge into one part each, of up to ``target_rows`` rows.

    ``parts`` are the live parts in order as ``(first, last, path, rows)``. A part of at least
    ``target_rows // 2`` rows is left alone and ends the current run; only runs of two or more
    parts are returned, in order."""

    groups: list[list[Part]] = [[]]
    rows_in_group = 0
    for first, last, path, rows in parts:
        if rows >= target_rows // 2:  # already big: left alone, and it ends the current run
            groups += [[], []]
            rows_in_group = 0
            continue
        if groups[-1] and rows_in_group + rows > target_rows:
            groups.append([])
            rows_in_group = 0
        groups[-1].append((first, last, path))
        rows_in_group += rows
    return [group for group in groups if len(group) >= 2]
