"""The bot's own settings, as the handlers need them (built from ``Settings`` by
config/telegram_wiring.py: nothing in this package reads the settings), and who may do what."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.lanes import LaneRules
from domain.users import UserLimits


@dataclass(frozen=True)
class BotOptions:
    limits: UserLimits = field(default_factory=UserLimits)
    admins: frozenset[int] = frozenset()
    allowed: frozenset[int] = frozenset()  # empty: everyone
    variations: int = 3
    history_size: int = 10
    admin_chat_id: int = 0  # where users' reports go (0: every admin's own chat)
    split_join_s: float = 1.5  # parts of a client-split paste arriving this close are joined
    album_wait_s: float = 30.0  # how long a finished variation waits for the others of its album
    links: str = "none"  # what picture links will be (``LinkPolicy.mode``): button | text | none
    translation: bool = True  # PROMPT_TRANSLATION is not off
    payments: bool = False  # PAYMENTS=stars: /buy, /credits, /paysupport, /terms (and /refund for admins)
    lanes: LaneRules = field(default_factory=LaneRules)  # LANES_*, DAILY_ALLOWANCE*

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admins

    def is_allowed(self, user_id: int) -> bool:
        return not self.allowed or user_id in self.allowed or self.is_admin(user_id)

    @property
    def receives_reports(self) -> bool:
        """Whether anyone gets users' reports (an admin chat, or admins): else no Report button."""
        return bool(self.admin_chat_id or self.admins)
