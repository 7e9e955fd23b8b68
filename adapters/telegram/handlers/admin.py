"""/stats for the admins: queue depth, workers seen, jobs today, failures, safety."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from adapters.telegram.options import BotOptions
from adapters.telegram.replies import Replies
from adapters.telegram.sender import Sender
from adapters.telegram.texts import BotTexts
from domain.models import Locale
from domain.ports import JobQueue, UserStore
from domain.safety import SafetyTally
from domain.use_cases.watch import WatchWorkers


def day_start(now: float) -> float:
    """Midnight UTC of the day ``now`` is in."""
    day = datetime.fromtimestamp(now, UTC)
    return day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def safety_line(texts: BotTexts, tally: SafetyTally, locale: Locale, banned_users: int) -> str:
    return texts.t(
        locale,
        "stats-safety",
        refused=sum(tally.prompts_refused.values()),
        refused_worker=tally.results["prompt_refused"],
        images_refused=tally.results["image_refused"],
        spoilers=tally.results["spoiler"],
        reports=tally.reports,
        banned=banned_users,
    )


def workers_lines(texts: BotTexts, locale: Locale, workers: dict[str, float], now: float) -> list[str]:
    return [
        texts.t(locale, "stats-worker", worker=w, ago=texts.duration(locale, now - seen))
        for w, seen in sorted(workers.items(), key=lambda item: -item[1])
    ] or [texts.t(locale, "stats-no-workers")]


async def on_stats(
    message: Message,
    options: BotOptions,
    replies: Replies,
    texts: BotTexts,
    store: UserStore,
    queue: JobQueue,
    sender: Sender,
    watch: WatchWorkers,
    safety: SafetyTally,
    locale: Locale,
) -> None:
    if not options.is_admin(message.from_user.id if message.from_user else 0):
        await replies.reply(message.chat.id, texts.t(locale, "error-admins_only"))
        return
    now = texts.clock()
    since = day_start(now)
    stats = await store.stats(since)
    try:
        depth: int | str = await queue.backlog()
    except Exception:
        depth = "?"
    workers = dict(stats.workers)
    for worker, seen in watch.workers_seen.items():
        if seen >= since:
            workers[worker] = max(workers.get(worker, 0.0), seen)
    text = texts.t(
        locale,
        "stats",
        depth=str(depth),
        in_flight=stats.active,
        workers=len(workers),
        submitted=stats.submitted,
        done=stats.done,
        failed=stats.failed,
        cancelled=stats.cancelled,
        users=stats.users,
        blocked=stats.blocked_users,
        sent=sender.calls.sent,
        retried=sender.calls.retried,
    )
    lines = workers_lines(texts, locale, workers, now)
    safety_text = safety_line(texts, safety, locale, getattr(stats, "banned_users", 0))
    await replies.reply(message.chat.id, text + "\n" + "\n".join(lines) + "\n" + safety_text)


def router() -> Router:
    r = Router(name="admin")
    r.message.register(on_stats, Command("stats"))
    return r
