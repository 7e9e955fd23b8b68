"""Several bot hosts at once (issue 16): 3 bot processes in webhook mode behind "one URL" (each
update posted to any of them), 2 worker processes, the real broker, the real PostgreSQL, S3 over
HTTP and the strict fake Bot API; 300 users.

It shows, and prints as figures: every accepted prompt gets exactly one picture; per-user limits
hold across instances (15 prompts of one user posted to 3 instances at once: 3 accepted); no chat
gets two messages within 1 s; at most 30 calls in any second overall; one bot killed with SIGKILL
right before it sends a picture: its claimed deliveries are taken over by another bot once the
lease ran out (not before), and delivered once.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import re
import time
from itertools import pairwise

import aiohttp
import asyncpg
import pytest

from tests.faults.rig import Proc, Rig

pytestmark = [pytest.mark.kafka, pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]

SECRET = "multi-instance-hook-secret-0123456789"
USERS = range(700_001, 700_301)  # 300 users
BURST_USERS = USERS[:20]  # each posts 15 prompts at once, 5 to each bot
LIMIT = 3
LEASE_S = 8.0
SESSION_MS = 6000
MESSAGES = (
    "sendMessage",
    "sendPhoto",
    "sendDocument",
    "editMessageText",
    "editMessageCaption",
    "editMessageReplyMarkup",
    "sendMediaGroup",
)


async def http_port(proc: Proc) -> int:
    await proc.wait_for_line("HTTP endpoint on", 180)
    line = next(line for line in proc.lines if "HTTP endpoint on" in line)
    return int(re.search(r":(\d+)\s*$", line).group(1))


class Webhook:
    """Telegram behind a load balancer: each update to one bot, the next one if it refuses or
    does not answer in time. As Telegram does: at most ``max_connections`` (40 by default)
    requests at once, and an update counts as delivered only on a 2xx answer."""

    def __init__(self, rig: Rig, ports: dict[str, int], max_connections: int = 40, timeout_s: float = 60.0) -> None:
        self.rig = rig
        self.ports = ports
        self.session = aiohttp.ClientSession()
        self.turn = itertools.count()
        self.sent_to: collections.Counter[str] = collections.Counter()
        self.refused = 0  # answers other than 2xx, and timeouts (each sent again)
        self.connections = asyncio.Semaphore(max_connections)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def post(self, user: int, text: str, bot: str | None = None) -> None:
        self.rig.prompts.append((user, text))
        update = self.rig.tg.text_update(user, text)
        names = list(self.ports)
        first = names.index(bot) if bot else next(self.turn) % len(names)
        for i in range(len(names) * 3):
            name = names[(first + i) % len(names)]
            try:
                async with (
                    self.connections,
                    self.session.post(
                        f"http://127.0.0.1:{self.ports[name]}/telegram/webhook",
                        json=update,
                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                        timeout=self.timeout,
                    ) as response,
                ):
                    if 200 <= response.status < 300:
                        self.sent_to[name] += 1
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.refused += 1
            await asyncio.sleep(0.2)
        raise AssertionError(f"no bot took the update of {user}")

    async def close(self) -> None:
        await self.session.close()


async def rows(url: str, sql: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.2)


def per_chat_min_gap(calls) -> tuple[float, list[tuple[float, str, str]]]:
    """The smallest gap between two messages to one chat, and the pairs under 1 s (gap, what)."""
    by_chat: dict[int, list] = collections.defaultdict(list)
    for c in calls:
        if c.ok and c.method in MESSAGES and c.chat_id is not None:
            by_chat[c.chat_id].append(c)
    gaps = []
    for chat, got in by_chat.items():
        got.sort(key=lambda c: c.at)
        gaps += [
            (b.at - a.at, f"{chat}: {a.method} {a.text[:40]!r}", f"{b.method} {b.text[:40]!r}")
            for a, b in pairwise(got)
        ]
    return min((g for g, *_ in gaps), default=float("inf")), sorted(p for p in gaps if p[0] < 1.0)


async def test_three_bots_two_workers_300_users_one_bot_killed(
    kafka_bootstrap, s3_server, telegram, postgres_url, tmp_path
):
    arm = tmp_path / "arm-the-kill"
    rig = await Rig(
        bootstrap=kafka_bootstrap,
        s3_url=s3_server.url,
        telegram=telegram,
        folder=tmp_path / "rig",
        user_store="postgres",
        database_url=postgres_url,
        telegram_mode="webhook",
        telegram_webhook_url="https://bot.example.com/telegram/webhook",
        telegram_webhook_secret=SECRET,
        max_jobs_in_flight_per_user=LIMIT,
        user_rate_per_minute=0,
        delivery_lease_s=LEASE_S,
        kafka_session_timeout_ms=SESSION_MS,
        kafka_partitions=6,
        status_edit_interval_s=1.0,
        # not the subject here: NudeNet in every worker would only slow them (and flag some of the
        # fake drawings, which changes their captions)
        safety_image_detector="none",
    ).start()
    hook: Webhook | None = None
    began = time.monotonic()
    try:
        bots = {f"bot-{i}": rig.proc("bot", f"bot-{i}") for i in (1, 2, 3)}
        victim = "bot-2"
        bots[victim].env["P2P_CRASH_ARM"] = str(arm)  # dies at its first picture once armed
        for name, proc in bots.items():
            await proc.start(crash_at="before_send_photo" if name == victim else None)
        ports = {name: await http_port(proc) for name, proc in bots.items()}
        await asyncio.gather(*(proc.wait_ready(90) for proc in bots.values()))
        hook = Webhook(rig, ports)
        for port in ports.values():  # the shared database is part of each bot's readiness
            async with hook.session.get(f"http://127.0.0.1:{port}/readyz") as response:
                body = await response.json()
                assert response.status == 200 and body["checks"]["database"] is True, body

        # --- per-user limits across instances: 15 prompts at once, 5 to each bot; no worker yet
        await asyncio.gather(
            *(
                hook.post(user, f"burst lighthouse {user}-{i}", bot=f"bot-{i % 3 + 1}")
                for user in BURST_USERS
                for i in range(15)
            )
        )

        async def burst_answered() -> bool:
            return all(
                sum(1 for c in telegram.calls if c.ok and c.method == "sendMessage" and c.chat_id == u) >= 15
                for u in BURST_USERS
            )

        await wait_until(burst_answered, 120, "every burst prompt answered (queued or refused)")
        accepted = {
            r["user_id"]: r["n"]
            for r in await rows(
                postgres_url,
                "SELECT user_id, COUNT(*) AS n FROM jobs WHERE user_id = ANY($1::bigint[]) GROUP BY user_id",
                list(BURST_USERS),
            )
        }
        assert accepted == dict.fromkeys(BURST_USERS, LIMIT), accepted
        burst_prompts = {(u, f"burst lighthouse {u}-{i}") for u in BURST_USERS for i in range(15)}
        accepted_burst = {
            (r["user_id"], r["prompt"])
            for r in await rows(
                postgres_url, "SELECT user_id, prompt FROM jobs WHERE user_id = ANY($1::bigint[])", list(BURST_USERS)
            )
        }
        rig.prompts = [p for p in rig.prompts if p not in burst_prompts or p in accepted_burst]

        workers = [rig.proc("worker", f"worker-{i}") for i in (1, 2)]
        for w in workers:
            await w.start()
        await asyncio.gather(*(w.wait_ready(90) for w in workers))
        await rig.wait_settled(180)

        # --- 300 users, one prompt each, to any bot; the victim dies at its next picture
        posted_at = time.monotonic()
        sem = asyncio.Semaphore(30)

        async def one(user: int) -> None:
            async with sem:
                await hook.post(user, f"scale-out lighthouse {user}")

        posting = asyncio.gather(*(one(u) for u in USERS))
        # armed mid-run: a fifth of the prompts in, the rest still coming (and the victim still
        # holding updates of its own: the load balancer sends those to the others once it is gone)
        await wait_until(
            lambda: _count(postgres_url, "SELECT COUNT(*) FROM jobs WHERE prompt LIKE 'scale-out%'", len(USERS) // 5),
            120,
            "a fifth of the prompts of the 300 users recorded",
        )
        arm.write_text("now")
        await bots[victim].wait_crashed(120)
        killed_at = time.monotonic()
        pending = [
            r["job_id"]
            for r in await rows(
                postgres_url, "SELECT job_id FROM deliveries WHERE owner = $1 AND delivered_at IS NULL", victim
            )
        ]
        assert pending, "the victim held no claim when it died"
        taken_after: dict[str, float] = {}  # job id: seconds from the kill until another bot held it

        async def watch_takeovers() -> None:
            while len(taken_after) < len(pending):
                for r in await rows(
                    postgres_url, "SELECT job_id, owner FROM deliveries WHERE job_id = ANY($1::text[])", pending
                ):
                    if r["owner"] != victim and r["job_id"] not in taken_after:
                        taken_after[r["job_id"]] = time.monotonic() - killed_at
                await asyncio.sleep(0.2)

        watcher = asyncio.create_task(watch_takeovers())
        await posting  # the rest of the prompts (those posted to the victim go to the others)
        await wait_until(
            lambda: _count(postgres_url, "SELECT COUNT(*) FROM jobs WHERE prompt LIKE 'scale-out%'", len(USERS)),
            60,
            "every prompt of the 300 users recorded",
        )
        # The one documented limit on statuses: a status reply the victim sent but had not
        # recorded when it was killed (its send in flight, or answered but not yet written to
        # the job's record: a Postgres round trip or two, long on a loaded machine). No process
        # knows that message's id, so none can delete it; the other bots publish the job from
        # the outbox and deliver its picture. Excused: only statuses that no job record names
        # and that were sent before the kill was seen (1 s for requests still in flight).
        excused: dict[tuple[int, int], float] = {}  # (chat, message): sent this long before the kill

        async def unrecorded_by_the_victim(left: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
            recorded = {
                (r["chat_id"], r["status_message_id"])
                for r in await rows(
                    postgres_url, "SELECT chat_id, status_message_id FROM jobs WHERE status_message_id IS NOT NULL"
                )
            }
            sent_at = {
                (c.chat_id, c.params.get("_message_id")): c.at
                for c in telegram.calls
                if c.ok and c.method == "sendMessage"
            }
            kept = []
            for chat, message_id, text in left:
                at = sent_at.get((chat, message_id))
                if (chat, message_id) in recorded or at is None or at > killed_at + 1.0:
                    kept.append((chat, message_id, text))
                else:
                    excused[(chat, message_id)] = round(killed_at - at, 2)
            return kept

        try:
            got = await rig.wait_settled(300, excuse=unrecorded_by_the_victim)
        except AssertionError:
            answered = rig.outcomes()
            for user, _prompt in [p for p in rig.prompts if not answered.get(p)][:3]:
                print(
                    f"calls to chat {user}:",
                    [(c.method, c.ok, c.text[:80]) for c in telegram.calls if c.chat_id == user],
                )
            raise
        await asyncio.wait_for(watcher, 10)
        ended = time.monotonic()

        # --- figures and checks
        rig.assert_exactly_once(got)
        assert all(v == ["picture"] for v in got.values()), {p: v for p, v in got.items() if v != ["picture"]}
        taken = await rows(
            postgres_url, "SELECT job_id, owner, delivered_at FROM deliveries WHERE job_id = ANY($1::text[])", pending
        )
        assert all(r["owner"] != victim and r["delivered_at"] is not None for r in taken), taken
        prompts_of = {
            r["job_id"]: (r["chat_id"], r["prompt"])
            for r in await rows(
                postgres_url, "SELECT job_id, chat_id, prompt FROM jobs WHERE job_id = ANY($1::text[])", pending
            )
        }
        redelivered_after = []
        for job_id in pending:
            chat, prompt = prompts_of[job_id]
            [photo] = [
                c
                for c in telegram.calls
                if c.ok
                and c.method in ("sendPhoto", "sendDocument")
                and c.chat_id == chat
                and prompt in c.text.split("\n")[:2]
            ]
            redelivered_after.append(photo.at - killed_at)
        min_gap, close = per_chat_min_gap(telegram.calls)
        close_pairs = len(close)
        for pair in close[:5]:
            print("two messages within 1 s:", pair)
        busiest = rig.busiest_second()
        pictures = rig.pictures()
        print(
            f"\nmulti-instance: 3 bots (webhook), 2 workers, {len(USERS)} users; "
            f"updates per bot {dict(hook.sent_to)}, posted again after an error or timeout {hook.refused}\n"
            f"  burst: {len(BURST_USERS)} users x 15 prompts over 3 bots -> accepted {sorted(set(accepted.values()))} "
            f"per user (limit {LIMIT})\n"
            f"  accepted prompts {len(rig.prompts)}, pictures {pictures}, duplicates "
            f"{sum(len(v) - 1 for v in got.values())}, missing {len([p for p in rig.prompts if p not in got])}\n"
            f"  per chat: smallest gap between two messages {min_gap:.3f} s ({close_pairs} under 1 s)\n"
            f"  overall: busiest second {busiest} calls (budget 30)\n"
            f"  killed {victim} with {len(pending)} claimed, unconfirmed deliveries: taken over by another bot "
            f"{min(taken_after.values()):.1f}-{max(taken_after.values()):.1f} s after the kill "
            f"(lease {LEASE_S:.0f} s, session timeout {SESSION_MS / 1000:.0f} s), their pictures sent "
            f"{min(redelivered_after):.1f}-{max(redelivered_after):.1f} s after it (behind the others, "
            f"at the shared budget)\n"
            f"  statuses the victim sent but never recorded (left in the chat, excused): {len(excused)} "
            f"(chat, message: seconds before the kill was seen {excused})\n"
            f"  300-user phase: {ended - posted_at:.1f} s; whole test {ended - began:.1f} s"
        )
        assert close_pairs == 0, f"a chat got two messages within 1 s (smallest gap {min_gap:.3f} s)"
        assert busiest <= 30
        # Nobody took a claim while its lease held (the victim renewed it every lease/3 until it
        # died). When the taker gets to it depends on its backlog: its delivery loop reaches the
        # redelivered result in partition order, behind the results queued at the shared budget.
        assert min(taken_after.values()) >= LEASE_S * 2 / 3 - 0.5, taken_after
    finally:
        if hook is not None:
            await hook.close()
        await rig.close()


async def _count(url: str, sql: str, wanted: int) -> bool:
    [row] = await rows(url, sql)
    return row[0] >= wanted
