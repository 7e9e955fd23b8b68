"""The fake Telegram Bot API: the server (server.py), what Telegram refuses (rules.py) and the
updates users send (script.py)."""

from tests.fakes.telegram.server import MESSAGE_METHODS, Call, FakeBotAPI

__all__ = ["MESSAGE_METHODS", "Call", "FakeBotAPI"]
