"""The texts the bot composes from the catalogues (``UiTexts``) and what it knows: durations and
wait estimates, errors, the live status lines, what makes the pictures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.telegram.i18n import UiTexts
from adapters.telegram.keyboards import short
from adapters.telegram.status import progress_bar
from domain.errors import DomainError
from domain.models import Lane, Locale, Stage
from domain.use_cases.balance import Balance
from domain.use_cases.watch import WatchWorkers
from domain.users import TooManyJobsInFlight


@dataclass
class BotTexts:
    t: UiTexts
    watch: WatchWorkers = field(default_factory=WatchWorkers)
    clock: Callable[[], float] = time.time

    def duration(self, locale: Locale, seconds: float) -> str:
        seconds = max(1, round(seconds))
        if seconds < 90:
            return self.t(locale, "duration-seconds", n=seconds)
        return self.t(locale, "duration-minutes", n=-(-seconds // 60))

    def eta(self, locale: Locale, seconds: float | None, *, unknown: str = "eta-unknown") -> str:
        """An estimate ("about 15 s"), rounded as coarsely as it is known: 5 s steps under two
        minutes, then minutes; "not known yet" before the first batch was seen."""
        if seconds is None:
            return self.t(locale, unknown)
        if seconds <= 10:
            duration = self.t(locale, "duration-seconds", n=max(1, round(seconds)))
        elif seconds < 120:
            duration = self.t(locale, "duration-seconds", n=5 * -(-round(seconds) // 5))
        else:
            duration = self.t(locale, "duration-minutes", n=max(2, round(seconds / 60)))
        return self.t(locale, "eta-about", duration=duration)

    def wait(self, locale: Locale, position: int) -> str:
        """The estimated wait of the job at ``position`` in line (1 = next)."""
        return self.eta(locale, self.watch.estimator.wait_s(position - 1, self.clock()))

    def error_text(self, locale: Locale, exc: DomainError) -> str:
        params = dict(exc.params)
        if isinstance(exc, TooManyJobsInFlight):
            params["wait"] = self.eta(locale, self.watch.estimator.wait_s(0, self.clock()), unknown="eta-unknown-short")
        if "retry_after" in params:
            params["wait"] = self.duration(locale, float(params["retry_after"]))  # type: ignore[arg-type]
        if "value" in params:
            params["value"] = str(params["value"])
        key = f"error-{exc.code}"
        if not self.t.has(key, locale):
            key = "error-invalid_request"
        return self.t(locale, key, **params)

    def queued_text(self, locale: Locale, prompt: str, position: int, lane: Lane = Lane.PRIORITY) -> str:
        eta = self.wait(locale, position)
        lane_text = self.t(locale, f"lane-{lane.value}")
        return self.t(locale, "status-queued", position=position, eta=eta, lane=lane_text, prompt=short(prompt, 200))

    def balance_lines(self, locale: Locale, balance: Balance) -> list[str]:
        """/balance, one line per part (a part added later is one more line)."""
        rules = balance.rules
        lines = [self.t(locale, "balance-header"), self.t(locale, f"balance-next-{balance.next_lane.lane.value}")]
        if rules.relaxed_after:
            window = self.duration(locale, rules.recent_window_s)
            lines.append(
                self.t(locale, "balance-recent", count=balance.recent, window=window, limit=rules.relaxed_after)
            )
        allowance = balance.allowance
        if allowance is None:
            lines.append(self.t(locale, "balance-no-allowance"))
        else:
            lines.append(
                self.t(
                    locale,
                    "balance-allowance",
                    left=allowance.left,
                    total=allowance.per_day,
                    at=time.strftime("%H:%M UTC", time.gmtime(allowance.renews_at)),
                    wait=self.duration(locale, allowance.renews_at - self.clock()),
                )
            )
        return lines

    def progress_text(self, locale: Locale, prompt: str, stage: str, step: int = 0, total: int = 0) -> tuple[str, int]:
        prompt = short(prompt, 200)
        if stage == Stage.GENERATING and total:
            percent = max(0, min(100, int(100 * step / total)))
            text = self.t(locale, "status-generating", percent=percent, bar=progress_bar(percent), prompt=prompt)
            return text, percent
        key = "status-uploading" if stage == Stage.UPLOADING else "status-started"
        return self.t(locale, key, prompt=prompt), 100 if stage == Stage.UPLOADING else 0

    def generator_text(self, locale: Locale) -> str:
        """One line on what makes the pictures, for /start and /help."""
        kind = self.watch.generator_kind
        return self.t(locale, f"generator-{kind.value if kind else 'unknown'}")
