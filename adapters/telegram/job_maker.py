"""Jobs from what a user typed or pressed: the message's parameters parsed and checked against
``SubmitPrompt``'s limits, with the user's settings for what the message leaves out."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from domain.errors import InvalidRequest
from domain.models import Job, Locale, Quality
from domain.params import AspectRatio, parse_aspect, parse_prompt, size_for_aspect
from domain.use_cases import SubmitPrompt
from domain.use_cases.admit import repeat_jobs
from domain.users import JobRecord, SendAs, UserPrefs


def _random_seed() -> int:
    return random.randint(0, 2**32 - 1)


@dataclass
class JobMaker:
    submit: SubmitPrompt
    seed_source: Callable[[], int] = _random_seed

    def size_for(self, aspect: AspectRatio | None) -> tuple[int | None, int | None]:
        if aspect is None:
            return None, None
        area = self.submit.default_width * self.submit.default_height
        return size_for_aspect(aspect, self.submit.limits, area)

    def prefs_aspect(self, prefs: UserPrefs) -> AspectRatio | None:
        if not prefs.aspect:
            return None
        with contextlib.suppress(InvalidRequest):
            return parse_aspect(prefs.aspect, self.submit.limits)
        return None

    def build_job(
        self,
        *,
        user_id: int,
        chat_id: int,
        locale: Locale,
        prefs: UserPrefs,
        text: str,
        job_id: str | None = None,
    ) -> Job:
        """Parse the message's parameters and check everything; raises ``InvalidRequest``."""
        params = parse_prompt(text, self.submit.limits)
        aspect = params.aspect or self.prefs_aspect(prefs)
        width, height = self.size_for(aspect)
        quality = params.quality or prefs.quality or Quality.AUTO
        job = self.submit.prepare(
            user_id=user_id,
            chat_id=chat_id,
            prompt=params.prompt,
            negative_prompt=params.negative_prompt,
            width=width,
            height=height,
            seed=params.seed,
            quality=quality,
            locale=locale,
            job_id=job_id,
            aspect=aspect.ratio if aspect else 0.0,
        )
        return job if prefs.translate else job.model_copy(update={"translate": False})

    def repeat_jobs(
        self, record: JobRecord, *, user_id: int, chat_id: int, locale: Locale, count: int, translate: bool = True
    ) -> list[Job]:
        """The same prompt, size and quality with ``count`` new seeds (``repeat_jobs``)."""
        return repeat_jobs(
            self.submit,
            record,
            user_id=user_id,
            chat_id=chat_id,
            locale=locale,
            count=count,
            translate=translate,
            seed_source=self.seed_source,
        )

    def prefs_with(self, prefs: UserPrefs, field_name: str, value: str) -> UserPrefs:
        """``prefs`` with one setting changed from a settings button; unknown values change nothing."""
        if field_name == "ar":
            aspect = value.replace("x", ":")
            if aspect == "auto":
                return replace(prefs, aspect=None)
            with contextlib.suppress(InvalidRequest):
                return replace(prefs, aspect=str(parse_aspect(aspect, self.submit.limits)))
        elif field_name == "q" and value in set(Quality):
            return replace(prefs, quality=Quality(value))
        elif field_name == "lang":
            if value == "auto":
                return replace(prefs, locale=None)
            if value in set(Locale):
                return replace(prefs, locale=Locale(value))
        elif field_name == "as":
            if value in set(SendAs):
                return replace(prefs, send_as=SendAs(value))
        elif field_name == "tr" and value in ("on", "off"):
            return replace(prefs, translate=value == "on")
        return prefs
