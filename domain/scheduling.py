"""Which jobs a worker runs together: compatible jobs, oldest first, users served in turn."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")


def pick_batch(
    items: Sequence[T],
    *,
    group: Callable[[T], Hashable],
    user: Callable[[T], Hashable],
    limit: int,
) -> tuple[list[T], list[T]]:
    """Split ``items`` (in arrival order) into one batch and the rest.

    The batch is the group (same size and profile) of the oldest item, so no group starves;
    within it, users take turns in order of their first job, so one user's burst of prompts
    does not push everyone else's back.
    """
    if not items or limit <= 0:
        return [], list(items)
    head = group(items[0])
    queues: OrderedDict[Hashable, deque[int]] = OrderedDict()
    for index, item in enumerate(items):
        if group(item) == head:
            queues.setdefault(user(item), deque()).append(index)
    chosen: list[int] = []
    while len(chosen) < limit and queues:
        for key in list(queues):
            chosen.append(queues[key].popleft())
            if not queues[key]:
                del queues[key]
            if len(chosen) == limit:
                break
    taken = set(chosen)
    return [items[i] for i in chosen], [item for i, item in enumerate(items) if i not in taken]


def pick_lane_batch(
    items: Sequence[T],
    *,
    first: Hashable,
    lane: Callable[[T], Hashable],
    group: Callable[[T], Hashable],
    user: Callable[[T], Hashable],
    limit: int,
    reserve: int = 0,
) -> tuple[list[T], list[T]]:
    """``pick_batch`` from the items of lane ``first`` (all items when it has none), leaving
    ``reserve`` slots to compatible items of the other lanes (as many as there are), then the
    slots left filled with compatible items of the other lanes: a lane orders the work, and a
    batch with room takes what can ride along."""
    mine = [item for item in items if lane(item) == first]
    if mine and reserve > 0:
        head = group(mine[0])
        compatible = sum(1 for item in items if lane(item) != first and group(item) == head)
        reserve = min(reserve, compatible, limit - 1)
    else:
        reserve = 0
    batch, _ = pick_batch(mine or items, group=group, user=user, limit=limit - reserve)
    if batch and mine and len(batch) < limit:
        head = group(batch[0])
        others = [item for item in items if lane(item) != first and group(item) == head]
        extra, _ = pick_batch(others, group=group, user=user, limit=limit - len(batch))
        batch += extra
    taken = {id(item) for item in batch}
    return batch, [item for item in items if id(item) not in taken]
