"""Outbound discipline under trouble and under load, through the real aiogram stack:

- the fake Bot API answers 429 (with retry_after) and 502 a few times: every result still reaches
  its user exactly once, and no chat gets more than one message a second;
- 50 users send prompts at once (65 messages): each gets a status reply within about two seconds
  (replies go first, at Telegram's 30 messages a second, never faster) and its picture, the
  per-user limits hold, and the bot stays within the overall rate in every second.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from itertools import pairwise

from adapters.sqlite.user_store import SqliteUserStore
from domain.models import JobStatus, Result
from tests.fakes.telegram import MESSAGE_METHODS, Call, FakeBotAPI
from tests.telegram.helpers import HeldGenerator, png_size


def message_calls(tg: FakeBotAPI, chat_id: int, *, include_failed: bool = False) -> list[Call]:
    return [c for c in tg.calls if c.chat_id == chat_id and c.method in MESSAGE_METHODS and (include_failed or c.ok)]


def assert_one_per_second(tg: FakeBotAPI, chats, *, include_failed: bool = True) -> float:
    """Every chat's consecutive message calls are at least a second apart; returns the smallest gap."""
    smallest = float("inf")
    for chat in chats:
        times = [c.at for c in message_calls(tg, chat, include_failed=include_failed)]
        for a, b in pairwise(times):
            smallest = min(smallest, b - a)
            assert b - a >= 1.0, f"chat {chat}: two messages {b - a:.3f}s apart"
    return smallest


SENSITIVE = "⚠️ Marked as sensitive: tap the picture to see it.\n"


async def wait_photos(tg: FakeBotAPI, expected: dict[int, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = Counter(c.chat_id for c in tg.calls if c.method == "sendPhoto" and c.ok)
        if all(got[chat] >= n for chat, n in expected.items()):
            return
        if time.monotonic() > deadline:
            missing = {chat: (got[chat], n) for chat, n in expected.items() if got[chat] < n}
            raise AssertionError(f"photos missing (got, wanted): {missing}")
        await asyncio.sleep(0.05)


async def test_flood_control_and_server_errors(start_service, telegram):
    tg = telegram
    service = await start_service(send_max_attempts=3, send_backoff_s=0.2)
    tg.fail("sendPhoto", 429, "Too Many Requests: retry after 1", retry_after=1, times=2)
    tg.fail("sendPhoto", 502, "Bad Gateway", times=4)  # one result runs out of tries: redelivered
    tg.fail("sendMessage", 502, "Bad Gateway", times=2)
    tg.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1, times=1)
    users = list(range(300, 305))
    prompts = {user: [f"a red fox number {user} {i}" for i in range(2)] for user in users}
    for user in users:
        for prompt in prompts[user]:
            tg.send_text(user, prompt)
    await wait_photos(tg, dict.fromkeys(users, 2), timeout=40)
    await asyncio.sleep(1.5)  # anything sent twice would show up now

    failed = Counter((c.method, c.params["_failed"]) for c in tg.calls if not c.ok)
    assert failed[("sendPhoto", 429)] == 2 and failed[("sendPhoto", 502)] == 4
    assert failed[("sendMessage", 502)] == 2 and failed[("sendMessage", 429)] == 1
    for user in users:
        photos = [c for c in tg.calls if c.method == "sendPhoto" and c.ok and c.chat_id == user]
        # the prompt leads the caption (after the "sensitive" notice of a flagged picture)
        captions = sorted(c.text.removeprefix(SENSITIVE).split("\n")[0] for c in photos)
        assert captions == sorted(prompts[user]), "each result exactly once"
        assert all(png_size(c.files["photo"]) == (512, 384) for c in photos)
        statuses = [c for c in tg.calls if c.method == "sendMessage" and c.ok and c.chat_id == user]
        assert len([s for s in statuses if "Queued" in s.text]) == 2
    assert_one_per_second(tg, users, include_failed=True)

    # The queue delivers results at least once: a result delivered again is not sent again.
    store = SqliteUserStore(service.settings.sqlite_path)
    await store.start()
    try:
        record = (await store.history(users[0], 1))[0]
    finally:
        await store.stop()
    before = len(tg.calls_of("sendPhoto", users[0]))
    await service.queue.publish_event(
        Result(
            job_id=record.job_id,
            user_id=record.user_id,
            chat_id=record.chat_id,
            status=JobStatus.DONE,
            prompt=record.prompt,
            seed=record.seed,
            width=record.width,
            height=record.height,
            image_key=record.image_key,
            image_url=record.image_url,
            profile=record.profile,
        )
    )
    await asyncio.sleep(1.5)
    assert len(tg.calls_of("sendPhoto", users[0])) == before


async def test_fifty_users_at_once(start_service, telegram):
    tg = telegram
    gen = HeldGenerator(marker="", max_batch=8)  # every picture waits until the replies are checked
    service = await start_service(generator=gen, max_jobs_in_flight_per_user=2, user_rate_per_minute=10)
    settings = service.settings
    users = list(range(1000, 1050))
    greedy = users[:5]
    pushed_at: dict[int, float] = {}
    for user in users:
        pushed_at[user] = time.monotonic()
        tg.send_text(user, f"a lighthouse for user {user}")
    for user in greedy:  # three more each, at once: only one more fits (2 in flight)
        for i in range(3):
            tg.send_text(user, f"an extra castle {i} for user {user}")

    # every user: a status reply within the time 65 replies take at 30 a second
    def replies(user: int) -> list[str]:
        return [c.text for c in tg.calls if c.method == "sendMessage" and c.ok and c.chat_id == user]

    deadline = time.monotonic() + 10
    while any(len(replies(u)) < (4 if u in greedy else 1) for u in users):
        assert time.monotonic() < deadline, "not every message got its reply"
        await asyncio.sleep(0.02)
    first_reply = {}
    for c in tg.calls:
        if c.method == "sendMessage" and c.ok and c.chat_id not in first_reply:
            first_reply[c.chat_id] = c
    latency = {user: first_reply[user].at - pushed_at[user] for user in users}
    assert max(latency.values()) < 3.0, sorted(latency.values())[-5:]
    # (a greedy user's refusal may come before its second status: both are answers to it)
    calm = [user for user in users if user not in greedy]
    assert all(first_reply[user].text.startswith("⏳ Queued") for user in calm), [
        first_reply[user].text for user in calm if not first_reply[user].text.startswith("⏳ Queued")
    ]

    # the per-user cap held: two accepted, two turned away with when to try again
    for user in greedy:
        texts = replies(user)
        assert len([t for t in texts if t.startswith("⏳ Queued")]) == 2, texts
        refusals = [t for t in texts if "You already have 2 pictures in progress (at most 2)" in t]
        assert len(refusals) == 2 and all("Try again when one is ready (" in t for t in refusals)

    # every accepted prompt: its picture, exactly once
    gen.release()
    await wait_photos(tg, {user: (2 if user in greedy else 1) for user in users}, timeout=60)
    await asyncio.sleep(1.0)
    photos = Counter(c.chat_id for c in tg.calls if c.method == "sendPhoto" and c.ok)
    assert photos == {user: (2 if user in greedy else 1) for user in users}

    # outbound discipline: one message a second per chat; overall never more than the rate in
    # any second (every call that goes through the sender counts)
    smallest_gap = assert_one_per_second(tg, users)
    paced = MESSAGE_METHODS | {"deleteMessage", "sendChatAction"}
    sent = sorted(c.at for c in tg.calls if c.method in paced)
    rate = settings.send_rate_global
    busiest = max(sum(1 for u in sent[i:] if u - t < 1.0) for i, t in enumerate(sent))
    assert busiest <= rate
    span = sent[-1] - sent[0]
    assert len(sent) <= rate * (span + 1)
    lat = sorted(latency.values())
    print(
        f"\n50 users: status latency min {lat[0]:.3f}s median {lat[25]:.3f}s max {lat[-1]:.3f}s; "
        f"smallest per-chat gap {smallest_gap:.3f}s; {len(sent)} calls in {span:.1f}s, busiest second {busiest}"
    )


async def test_rate_limit_says_when(start_service, telegram):
    tg = telegram
    await start_service(user_rate_per_minute=2, max_jobs_in_flight_per_user=5, send_rate_per_chat=20)
    for i in range(3):
        tg.send_text(77, f"a blue whale {i}")
        await tg.wait_for(
            lambda c, i=i: c.chat_id == 77 and c.method == "sendMessage" and len(tg.calls_of("sendMessage", 77)) > i
        )
    texts = [c.text for c in tg.calls_of("sendMessage", 77)]
    assert sum(t.startswith("⏳ Queued") for t in texts) == 2
    [refusal] = [t for t in texts if "more than 2 pictures a minute" in t]
    seconds = int(refusal.split("Try again in ")[1].split(" s")[0])
    assert 55 <= seconds <= 60
