"""The scripted side of the fake Bot API server (tests/fakes/telegram/server.py): the updates users send
(messages in private chats and groups, long pastes split as clients split them, button presses,
inline queries), queued for ``getUpdates``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from tests.fakes.telegram import rules

SPLIT_AT = rules.TEXT_LIMIT  # clients cut a long paste into messages of this many characters


class ScriptedUpdates:
    """Mixed into ``FakeBotAPI``, whose state (updates, ids, chats, messages) it uses."""

    _updates: list[dict[str, Any]]
    messages: dict[int, dict[str, Any]]
    chats: dict[int, dict[str, Any]]
    user_messages: set[tuple[int, int]]
    user_message_bodies: dict[tuple[int, int], dict[str, Any]]
    inline_queries: dict[str, dict[str, Any]]
    bot_user: dict[str, Any]
    _update_ids: Iterator[int]
    _message_ids: Iterator[int]
    _callback_ids: Iterator[int]
    _inline_ids: Iterator[int]
    _new_update: asyncio.Event

    def joined(self, chat_id: int, user_id: int) -> None:
        """``user_id`` is a member of ``chat_id`` (guests.py keeps the members of groups)."""

    def push_update(self, update: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **update})
        self._new_update.set()
        return update_id

    def chat(self, chat_id: int, first_name: str = "Ann") -> dict[str, Any]:
        """The chat object of ``chat_id``: private for a positive id, a group for a negative one."""
        if chat_id not in self.chats:
            self.chats[chat_id] = (
                {"id": chat_id, "type": "private", "first_name": first_name}
                if chat_id > 0
                else {"id": chat_id, "type": "group", "title": f"Group {-chat_id}"}
            )
        return self.chats[chat_id]

    def text_update(
        self,
        user_id: int,
        text: str,
        *,
        language_code: str = "en",
        first_name: str = "Ann",
        chat_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        """A message from a user as an update (commands get their bot_command entity), not
        queued: for posting to a webhook. ``chat_id``: a group the user writes in (default: the
        private chat); ``reply_to``: the id of a message of that chat it replies to."""
        chat = self.chat(user_id if chat_id is None else chat_id, first_name)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": {
                "id": user_id,
                "is_bot": False,
                "first_name": first_name,
                "language_code": language_code,
            },
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if reply_to is not None:
            message["reply_to_message"] = self.messages.get(reply_to) or {
                "message_id": reply_to,
                "date": int(time.time()),
                "chat": chat,
                "text": "",
            }
        self.joined(chat["id"], user_id)
        self.user_messages.add((chat["id"], message["message_id"]))
        self.user_message_bodies[(chat["id"], message["message_id"])] = message
        return {"update_id": next(self._update_ids), "message": message}

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        language_code: str = "en",
        first_name: str = "Ann",
        chat_id: int | None = None,
        reply_to: int | None = None,
    ) -> int:
        """Script a message from a user (commands get their bot_command entity)."""
        update = self.text_update(
            user_id,
            text,
            language_code=language_code,
            first_name=first_name,
            chat_id=chat_id,
            reply_to=reply_to,
        )
        update_id = update.pop("update_id")
        self._updates.append({"update_id": update_id, **update})
        self._new_update.set()
        return update_id

    def send_long_text(self, user_id: int, text: str, *, language_code: str = "en") -> list[int]:
        """A long paste as a Telegram client sends it: one message per 4096 characters, one
        after the other."""
        parts = [text[i : i + SPLIT_AT] for i in range(0, len(text), SPLIT_AT)]
        return [self.send_text(user_id, part, language_code=language_code) for part in parts]

    def inline_query(self, user_id: int, query: str, *, language_code: str = "en", chat_type: str = "group") -> str:
        """Script ``@bot <query>`` typed by a user in some chat; returns the query id."""
        query_id = f"iq{next(self._inline_ids)}"
        self.inline_queries[query_id] = {"user_id": user_id, "query": query}
        self.push_update(
            {
                "inline_query": {
                    "id": query_id,
                    "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language_code},
                    "query": query,
                    "offset": "",
                    "chat_type": chat_type,
                }
            }
        )
        return query_id

    def send_sticker(self, user_id: int, language_code: str = "en") -> int:
        return self.push_update(
            {
                "message": {
                    "message_id": next(self._message_ids),
                    "date": int(time.time()),
                    "chat": self.chat(user_id),
                    "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language_code},
                    "sticker": {
                        "file_id": "stk",
                        "file_unique_id": "stk",
                        "type": "regular",
                        "width": 512,
                        "height": 512,
                        "is_animated": False,
                        "is_video": False,
                    },
                }
            }
        )

    def press(self, user_id: int, message_id: int, data: str, *, language_code: str = "en") -> str:
        """Script a press of an inline button with ``data`` under the bot's message ``message_id``."""
        query_id = f"cq{next(self._callback_ids)}"
        message = self.messages.get(message_id) or {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self.chat(user_id),
            "from": self.bot_user,
            "text": "",
        }
        self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language_code},
                    "chat_instance": str(user_id),
                    "message": message,
                    "data": data,
                }
            }
        )
        return query_id
