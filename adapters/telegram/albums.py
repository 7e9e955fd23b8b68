"""Variations as one album: the pictures of jobs asked for together go out in one
``sendMediaGroup`` (2-10 items) instead of one paced message each.

Results arrive one by one, each handled on its own (``DeliverResults`` handles events
concurrently). Each finished picture of an album waits here until the others have arrived (or
``wait_s`` has passed since; a failed or cancelled one is dropped from the album); then one of
the handlers sends the album and the others wait for the outcome of that send: if it fails to
be sent, they fail too, so their results stay owed and come again (alone, the album is gone).
Albums are kept in memory: after a restart the pictures of an album go out one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Album:
    job_ids: list[str]
    arrived: dict[str, Any] = field(default_factory=dict)
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    taken: bool = False
    outcome: asyncio.Future[None] | None = None

    def check(self) -> None:
        if all(j in self.arrived for j in self.job_ids):
            self.complete.set()


class Albums:
    def __init__(self, wait_s: float = 30.0) -> None:
        self.wait_s = wait_s
        self._albums: dict[str, _Album] = {}

    def expect(self, job_ids: list[str]) -> None:
        album = _Album(list(job_ids))
        for job_id in job_ids:
            self._albums[job_id] = album

    def drop(self, job_id: str) -> None:
        """The job will bring no picture (failed, cancelled): the album goes on without it."""
        album = self._albums.pop(job_id, None)
        if album is not None and job_id in album.job_ids:
            album.job_ids.remove(job_id)
            album.check()

    async def collect(self, job_id: str, item: Any) -> Batch | None:
        """None: the job is not in an album (send it alone). Otherwise, once the album is
        complete: the ``Batch`` to send, to this caller (which must call ``batch.done()``
        after), or an empty batch when another caller sent this one (its error, if any, is
        raised here)."""
        album = self._albums.get(job_id)
        if album is None or album.taken:
            return None
        album.arrived[job_id] = item
        album.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(album.complete.wait(), self.wait_s)
        if album.taken:
            assert album.outcome is not None
            await asyncio.shield(album.outcome)
            return Batch([], None)
        album.taken = True
        album.outcome = asyncio.get_running_loop().create_future()
        album.complete.set()
        for other in list(album.job_ids) + list(album.arrived):
            self._albums.pop(other, None)
        return Batch([album.arrived[j] for j in album.job_ids if j in album.arrived], album.outcome)


@dataclass
class Batch:
    items: list[Any]
    outcome: asyncio.Future[None] | None

    def done(self, error: BaseException | None = None) -> None:
        """How the send went, for the handlers of the album's other pictures."""
        if self.outcome is None or self.outcome.done():
            return
        if error is None:
            self.outcome.set_result(None)
        else:
            self.outcome.set_exception(error)
            self.outcome.exception()  # retrieved: no "never retrieved" warning when nobody waits
