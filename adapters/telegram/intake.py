"""A prompt message taken in: parsed and checked (``JobMaker``), refused with a clear answer, or
admitted (``AdmitJobs``, which answers through the ``TelegramAnnouncer`` with the live status and
puts the job on the queue)."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.telegram.guests import GuestAnswers
from adapters.telegram.job_maker import JobMaker
from adapters.telegram.replies import Replies
from adapters.telegram.texts import BotTexts
from domain.errors import InvalidRequest, PromptRefused
from domain.models import Job, Locale
from domain.safety import SafetyTally
from domain.use_cases.admit import AdmitJobs
from domain.users import UserPrefs


@dataclass
class PromptIntake:
    jobs: JobMaker
    admit: AdmitJobs
    replies: Replies
    texts: BotTexts
    safety: SafetyTally
    guests: GuestAnswers

    async def accept_text(
        self,
        *,
        user_id: int,
        chat_id: int,
        locale: Locale,
        prefs: UserPrefs,
        text: str,
        reply_to: int | None = None,
    ) -> list[Job]:
        """A prompt message: parse, check, admit; returns the jobs accepted."""
        job_id = self.jobs.submit.job_id_for(chat_id, reply_to) if reply_to is not None else None
        try:
            job = self.jobs.build_job(
                user_id=user_id, chat_id=chat_id, locale=locale, prefs=prefs, text=text, job_id=job_id
            )
        except InvalidRequest as exc:
            if isinstance(exc, PromptRefused):
                self.safety.prompts_refused[str(exc.params.get("category", ""))] += 1
            await self.replies.reply(chat_id, self.texts.error_text(locale, exc), reply_to=reply_to, private_to=user_id)
            return []
        return await self.admit([job], reply_to=reply_to)

    async def accept_guest(
        self,
        *,
        user_id: int,
        chat_id: int,
        message_id: int,
        query_id: str,
        locale: Locale,
        prefs: UserPrefs,
        text: str,
    ) -> list[Job]:
        """A prompt of a guest query (guest mode): checked and admitted like any prompt of that
        user (the same limits, filter and lanes; the caller owns the job), every answer going
        as the answer to the query, the one way into that chat (``GuestAnswers``)."""
        job_id = self.jobs.submit.job_id_for(chat_id, message_id)
        try:
            job = self.jobs.build_job(
                user_id=user_id, chat_id=chat_id, locale=locale, prefs=prefs, text=text, job_id=job_id
            )
        except InvalidRequest as exc:
            if isinstance(exc, PromptRefused):
                self.safety.prompts_refused[str(exc.params.get("category", ""))] += 1
            await self.guests.refuse(chat_id, query_id, self.texts.error_text(locale, exc), locale)
            return []
        self.guests.expect(job.job_id, query_id)
        try:
            return await self.admit([job])
        finally:
            self.guests.take(job.job_id)  # (answered, or the same query again: nothing more due)
