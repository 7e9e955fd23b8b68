"""/stats for the admins: queue depth, workers seen, jobs today, failures."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from adapters.telegram.front import Front
from adapters.telegram.moderation import safety_line
from domain.models import Locale


def router() -> Router:
    r = Router(name="admin")

    @r.message(Command("stats"))
    async def on_stats(message: Message, front: Front, locale: Locale) -> None:
        user_id = message.from_user.id if message.from_user else 0
        if not front.is_admin(user_id):
            await front.reply(message.chat.id, front.t(locale, "error-admins_only"))
            return
        now = front.clock()
        since = front.today_start()
        stats = await front.store.stats(since)
        try:
            depth: int | str = await front.queue.backlog()
        except Exception:
            depth = "?"
        workers = dict(stats.workers)
        for worker, seen in front.workers_seen.items():
            if seen >= since:
                workers[worker] = max(workers.get(worker, 0.0), seen)
        lines = [
            front.t(locale, "stats-worker", worker=w, ago=front.duration(locale, now - seen))
            for w, seen in sorted(workers.items(), key=lambda item: -item[1])
        ] or [front.t(locale, "stats-no-workers")]
        text = front.t(
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
            sent=front.sender.sent,
            retried=front.sender.retried,
        )
        safety = safety_line(front, locale, getattr(stats, "banned_users", 0))
        await front.reply(message.chat.id, text + "\n" + "\n".join(lines) + "\n" + safety)

    return r
