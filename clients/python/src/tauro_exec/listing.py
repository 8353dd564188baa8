"""Lists of runs and experiments, fetched from execd a page at a time as they are read.

``Client.runs()`` and ``Client.experiments()`` return them: they iterate,
index and slice like a list (read-only), and render as a table in Jupyter.
``Client.projects()`` returns ``Projects``, a plain list (execd sends every
project at once) that renders as a table too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar, overload

from tauro_exec import _display
from tauro_exec.models import Project

if TYPE_CHECKING:
    from tauro_exec.experiment import Experiment
    from tauro_exec.run import Run

T = TypeVar("T")

# One call for the page after a token ("" for the first): its items and the
# next page's token ("" after the last page).
Fetch = Callable[[str], tuple[list[T], str]]


class Paged(Sequence[T]):
    """A read-only list that fetches its pages only when reading needs them.

    Nothing is fetched when it is made. Iterating fetches the next page when
    it runs out of fetched items; ``x[i]`` and ``x[:n]`` fetch up to item i
    or n; ``in`` fetches until it finds the item. ``len()``, a negative
    index or an open-ended slice fetch every page. Showing it (repr, or the table in Jupyter) fetches the first
    page and says whether there are more. What was fetched is kept: reading
    it again makes no call, and it is not refreshed.
    """

    def __init__(self, fetch: Fetch[T], *, limit: int | None = None) -> None:
        self._fetch = fetch
        self._limit = limit
        self._items: list[T] = []
        self._token = ""
        self._done = limit is not None and limit <= 0

    @property
    def fetched(self) -> list[T]:
        """The items fetched so far, without fetching more."""
        return list(self._items)

    @property
    def complete(self) -> bool:
        """Whether every page has been fetched."""
        return self._done

    def _next_page(self) -> bool:
        """Fetch one more page; False when there was none left."""
        if self._done:
            return False
        items, self._token = self._fetch(self._token)
        self._items.extend(items)
        if self._limit is not None and len(self._items) >= self._limit:
            del self._items[self._limit :]
            self._done = True
        if not self._token:
            self._done = True
        return True

    def _fetch_until(self, count: int | None) -> None:
        """Fetch until ``count`` items are here (None: all of them) or there are no more."""
        while (count is None or len(self._items) < count) and self._next_page():
            pass

    def __iter__(self) -> Iterator[T]:
        i = 0
        while i < len(self._items) or self._next_page():
            if i < len(self._items):  # a page may be empty
                yield self._items[i]
                i += 1

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            start, stop, step = index.start, index.stop, index.step
            bounded = stop is not None and stop >= 0 and (start is None or start >= 0) and (step is None or step > 0)
            self._fetch_until(stop if bounded else None)
            return self._items[index]
        self._fetch_until(index + 1 if index >= 0 else None)
        return self._items[index]

    def __len__(self) -> int:
        """How many there are: fetches every page."""
        self._fetch_until(None)
        return len(self._items)

    def __bool__(self) -> bool:
        self._fetch_until(1)
        return bool(self._items)

    def _shown(self) -> list[T]:
        """What a display shows: the first page at least."""
        self._fetch_until(1)
        return self.fetched

    def __repr__(self) -> str:
        items = self._shown()
        more = "" if self._done else ", ... (more not fetched yet)"
        return f"{type(self).__name__}([{', '.join(repr(x) for x in items)}{more}])"


class Runs(Paged["Run"]):
    """Runs, newest first, as ``Client.runs()`` returns them; a table in Jupyter."""

    def _repr_html_(self) -> str:
        return _display.runs_html(self._shown(), more=not self._done)


class Experiments(Paged["Experiment"]):
    """Experiments, newest first, as ``Client.experiments()`` returns them; a table in Jupyter."""

    def _repr_html_(self) -> str:
        return _display.experiments_html(self._shown(), more=not self._done)


class Projects(list[Project]):
    """The projects execd serves that the caller may view, by name; a table in Jupyter."""

    def _repr_html_(self) -> str:
        return _display.projects_html(self)
