"""One aiogram ``Router`` per feature. Handlers take ``front`` (the service object, from the
dispatcher's workflow data) and ``locale``/``prefs`` (from ``UserContext``)."""

from __future__ import annotations

from aiogram import Router

from adapters.telegram.handlers import admin, buttons, fallback, inline, jobs, moderation, prompts, settings, start


def routers() -> list[Router]:
    # Order matters: commands before the catch-all prompt handler, the fallback last.
    return [
        inline.router(inline.InlinePrompts()),  # its /start <parameter> before the plain /start
        start.router(),
        settings.router(),
        jobs.router(),
        admin.router(),
        moderation.router(),  # before buttons: it takes the report button
        buttons.router(),
        prompts.router(),
        fallback.router(),
    ]
