"""Progress of long commands, on standard error when it is a terminal and nowhere else.

``vigil run`` over a large file, ``vigil publish`` and ``vigil audit verify`` can take
minutes; a person at a terminal should see that work goes on and how fast. Pipes, CI
logs and scripts get none of it: their standard error stays exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[[float], None]
T = TypeVar("T")


def _ignore(_amount: float) -> None:
    """Where nobody watches, progress costs nothing."""


@contextmanager
def progress(description: str, total: float | None = None, in_bytes: bool = False) -> Iterator[Advance]:
    """A function to call with the amount of work just done; shown only on a terminal.

    ``total`` None shows a count and the elapsed time; ``in_bytes`` counts bytes (input files).
    """
    console = Console(stderr=True)
    if not console.is_terminal:
        yield _ignore
        return
    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("[progress.description]{task.description}")]
    if total is not None:
        columns += [BarColumn(), TaskProgressColumn()]
    columns += [DownloadColumn() if in_bytes else MofNCompleteColumn(), TimeElapsedColumn()]
    if total is not None:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as shown:
        task = shown.add_task(description, total=total)
        yield lambda amount: shown.advance(task, amount)


def input_size(source: IO[bytes]) -> int | None:
    """Bytes in a regular input file (so the bar has an end); None for pipes and terminals."""
    try:
        if source.seekable():
            position = source.tell()
            size = source.seek(0, 2)
            source.seek(position)
            return size - position
    except (OSError, ValueError):
        pass
    return None


def counted_lines(lines: Iterable[bytes], advance: Advance) -> Iterable[bytes]:
    """The same lines, reporting the bytes of each as it is taken (untouched where nobody watches)."""
    return lines if advance is _ignore else _counting(lines, advance, len)


def counted(items: Iterable[T], advance: Advance) -> Iterable[T]:
    """The same items, reporting each as it is taken (untouched where nobody watches)."""
    return items if advance is _ignore else _counting(items, advance, lambda _item: 1)


def _counting(items: Iterable[T], advance: Advance, amount: Callable[[T], int]) -> Iterator[T]:
    for item in items:
        advance(amount(item))
        yield item
