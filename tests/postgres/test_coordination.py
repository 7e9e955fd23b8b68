"""The send budget and per-chat pacing shared by bot instances through PostgreSQL
(adapters/postgres/coordination.py), on the real server."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise

import pytest

from adapters.postgres import PostgresDatabase
from adapters.postgres.coordination import PostgresSendCoordination

pytestmark = pytest.mark.postgres


def coordination(url: str, **kw) -> PostgresSendCoordination:
    return PostgresSendCoordination(PostgresDatabase(url), heartbeat_s=0.2, ttl_s=0.8, **kw)


async def test_the_budget_is_shared_among_the_live_instances(postgres_url):
    shares: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    a, b, c = (coordination(postgres_url, owner=n, rate=30, on_share=shares[n].append) for n in "abc")
    await asyncio.gather(a.start(), b.start(), c.start())
    try:
        await asyncio.sleep(0.5)
        assert (a.live, a.share, b.share, c.share) == (3, 10, 10, 10)
        # one killed: no goodbye; it stops counting once its heartbeat is older than the ttl
        c._task.cancel()
        await asyncio.sleep(1.3)
        assert (a.live, a.share, b.share) == (2, 15, 15)
        await b.stop()  # a clean stop leaves at once
        await asyncio.sleep(0.5)
        assert (a.live, a.share) == (1, 30)
        assert shares["a"][-1] == 30 and 10 in shares["a"] and 15 in shares["a"]
    finally:
        await a.stop()
        await c.stop()


async def test_one_chat_is_paced_across_instances(postgres_url):
    a, b = coordination(postgres_url, owner="a"), coordination(postgres_url, owner="b")
    await asyncio.gather(a.start(), b.start())
    sent: list[tuple[int, str, float, float]] = []  # chat, instance, start, end of each "call"

    async def send(who: PostgresSendCoordination, chat: int, n: int) -> None:
        for _ in range(n):
            assert await who.acquire(chat)
            start = time.monotonic()
            await asyncio.sleep(0.05)  # the call itself
            sent.append((chat, who.owner, start, time.monotonic()))
            await who.release(chat, 0.4)

    try:
        await asyncio.gather(send(a, 7, 3), send(b, 7, 3), send(a, 8, 1))
    finally:
        await asyncio.gather(a.stop(), b.stop())
    seven = sorted((start, end, owner) for chat, owner, start, end in sent if chat == 7)
    assert len(seven) == 6 and {o for _, _, o in seven} == {"a", "b"}
    gaps = [later[0] - earlier[1] for earlier, later in pairwise(seven)]
    assert min(gaps) >= 0.38, gaps  # each one 0.4 s after the previous one ended, whoever sent it
    [(_, _, eight_start, _)] = [m for m in sent if m[0] == 8]
    assert eight_start < seven[1][0]  # another chat does not wait for chat 7


async def test_a_holder_that_died_lets_go_after_its_lease(postgres_url):
    a = coordination(postgres_url, owner="a", lease_s=0.6)
    b = coordination(postgres_url, owner="b", lease_s=0.6)
    await asyncio.gather(a.start(), b.start())
    try:
        assert await a.acquire(5)  # and dies before release: its heartbeat (which renews) stops
        a._task.cancel()
        started = time.monotonic()
        assert await b.acquire(5)
        assert 0.4 <= time.monotonic() - started < 3
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def test_a_live_holder_keeps_its_chat_past_the_lease(postgres_url):
    """A call that waits long inside its hold (for the global budget, behind a backlog of
    pictures) keeps the chat: its heartbeat renews the lease, so another instance does not send
    to the chat meanwhile (it did: two messages to one chat 0.3 s apart, the first instance's
    call let through after the lease had passed to the second)."""
    a = coordination(postgres_url, owner="a", lease_s=0.6)
    b = coordination(postgres_url, owner="b", lease_s=0.6)
    await asyncio.gather(a.start(), b.start())
    try:
        assert await a.acquire(5)
        waiter = asyncio.create_task(b.acquire(5))
        await asyncio.sleep(2.0)  # more than three leases
        assert not waiter.done()
        await a.release(5, 0.3)
        released = time.monotonic()
        assert await asyncio.wait_for(waiter, 3)
        assert time.monotonic() - released >= 0.25  # and then the chat's interval still holds
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def test_without_the_database_each_instance_paces_alone(restartable_postgres):
    a = coordination(restartable_postgres.url(), owner="a")
    await a.start()
    try:
        await asyncio.to_thread(restartable_postgres.stop)
        assert await a.acquire(1) is False  # no wait, no error: the sender's own pacing holds
    finally:
        await a.stop()
