"""Who goes next: the waiting jobs of one lane, kept per user and served fairly.

The next job comes from the user served least recently (never served counts as longest ago; ties go
to the earlier submission), so one user's flood never starves another. Jobs marked Relax start only
when no user's next job is Fast. A job interrupted by a worker crash goes first, before anyone's
new jobs.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

_NEVER, _RETRY_FIRST = -1, -2


class Waiting(Protocol):
    """What the queues read of a job (generation.pool.workers.JobHandle)."""

    owner_id: int
    sequence: int  # submission order, the tie-breaker between users
    relax: bool


JobT = TypeVar("JobT", bound=Waiting)


class FairQueues(Generic[JobT]):
    def __init__(self) -> None:
        self._queues: dict[int, deque[JobT]] = {}
        self._served_at: dict[int, int] = {}  # owner -> dispatch tick of their last job
        self._ticks = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._queues)

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def add(self, job: JobT, *, retry: bool = False) -> None:
        queue = self._queues.setdefault(job.owner_id, deque())
        if retry:
            queue.appendleft(job)
            self._served_at[job.owner_id] = _RETRY_FIRST
        else:
            queue.append(job)

    def remove(self, job: JobT) -> None:
        queue = self._queues.get(job.owner_id)
        if queue and job in queue:
            queue.remove(job)
            if not queue:
                del self._queues[job.owner_id]

    def pop_next(self) -> JobT | None:
        """The job to start now (and the owner counts as served now)."""
        if not self._queues:
            return None
        owner = _least_recently_served(_fast_first(self._queues), lambda o: self._served_at.get(o, _NEVER))
        self._served_at[owner] = next(self._ticks)
        return self._pop(self._queues, owner)

    def peek_next(self) -> JobT | None:
        """The job `pop_next` would return now, left in its queue."""
        if not self._queues:
            return None
        owner = _least_recently_served(_fast_first(self._queues), lambda o: self._served_at.get(o, _NEVER))
        return self._queues[owner][0]

    def order(self) -> list[JobT]:
        """Every waiting job in the order they will start, by replaying `pop_next` on a copy."""
        queues = {owner: deque(queue) for owner, queue in self._queues.items()}
        served = {owner: self._served_at.get(owner, _NEVER) for owner in queues}
        later = itertools.count(start=1 << 62)  # ticks later than any real one
        order = []
        while queues:
            owner = _least_recently_served(_fast_first(queues), served.__getitem__)
            served[owner] = next(later)
            order.append(self._pop(queues, owner))
        return order

    @staticmethod
    def _pop(queues: dict[int, deque[JobT]], owner: int) -> JobT:
        job = queues[owner].popleft()
        if not queues[owner]:
            del queues[owner]
        return job


def _fast_first(queues: dict[int, deque[JobT]]) -> dict[int, deque[JobT]]:
    """The users whose next job is Fast, if any; else everyone (Relax jobs run when nothing else waits)."""
    fast = {owner: queue for owner, queue in queues.items() if not queue[0].relax}
    return fast or queues


def _least_recently_served(queues: dict[int, deque[JobT]], served_at: Callable[[int], int]) -> int:
    return min(queues, key=lambda owner: (served_at(owner), queues[owner][0].sequence))
