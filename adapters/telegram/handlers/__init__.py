"""One aiogram ``Router`` per feature, its handlers at module level, each picked by its filters
(commands, magic filters, ``CallbackData`` filters: one handler per button). Handlers take the
narrow parts they use by name from the dispatcher's workflow data (``adapters.telegram.bot.
HandlerParts``) and ``locale``/``prefs`` from ``UserContext``.

``router()`` in each module only registers the module's handlers on a new ``Router``: an aiogram
router belongs to one dispatcher for good, and a process (the tests above all) may build more
than one bot."""

from __future__ import annotations

from aiogram import Router

from adapters.telegram.handlers import (
    admin,
    balance,
    bans,
    buttons,
    fallback,
    guests,
    inline,
    jobs,
    payments,
    prompts,
    settings,
    start,
)


def routers() -> list[Router]:
    # Order matters: commands before the catch-all prompt handler, the fallback last.
    return [
        inline.router(),  # its /start <parameter> before the plain /start
        guests.router(),
        start.router(),
        settings.router(),
        jobs.router(),
        balance.router(),
        admin.router(),
        bans.router(),
        payments.router(),  # Telegram Stars: before the prompts (a payment is a message too)
        buttons.router(),
        prompts.router(),
        fallback.router(),
    ]
