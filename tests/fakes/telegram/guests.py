"""Guest mode (Bot API 10.0), inline messages and ephemeral messages (Bot API 10.2) for the fake
Bot API server (tests/fakes/telegram/server.py), as strict as the rest of it.

- A guest query: a user mentions the bot in a chat, possibly one the bot is not a member of
  (``guest_query``); the bot gets an update ``guest_message`` (a Message with ``guest_query_id``)
  and answers it once with ``answerGuestQuery`` (one InlineQueryResult), which posts an inline
  message into that chat and returns ``SentGuestMessage`` (``inline_message_id``). A second
  answer, a late one (``guest_answer_timeout_s``) or an unknown query id is refused with the text
  Telegram gives for the same fault of inline and callback queries ("query is too old and response
  timeout expired or query ID is invalid"): the Bot API documents no text of its own for guest
  queries. A chat seen only through guest queries is not the bot's: anything sent to it by chat id
  is refused ("chat not found", Telegram's text for a chat the bot cannot reach).
- Inline messages (guest answers) are edited by ``inline_message_id`` (editMessageText,
  editMessageCaption, editMessageReplyMarkup, editMessageMedia); Telegram answers True. As the Bot
  API documents for editMessageMedia, an inline message takes no new upload: a file id the bot got
  before, or a URL Telegram can reach. (The documented rule, with no documented text: the fake
  answers in the style of Telegram's other media texts.) Buttons under them are pressed with
  ``press_inline`` (a callback query with ``inline_message_id`` and no ``message``).
- Ephemeral messages: sendMessage with ``ephemeral_message_parameters`` (its ``receiver_user_id``)
  goes to one member of a group; a receiver who is not a member of the chat (has never written
  there) is refused with "USER_NOT_PARTICIPANT" (MTProto's error for a user not in the chat, passed
  through in capitals as Telegram passes BUTTON_URL_INVALID: the Bot API gives no text of its
  own). The message has ``message_id`` 0 and an ``ephemeral_message_id``; editEphemeralMessageText
  and deleteEphemeralMessage address it by chat, receiver and that id ("message to edit not found"
  otherwise, as for ordinary messages).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from tests.fakes.telegram import rules
from tests.fakes.telegram.script import ScriptedUpdates

QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"


class GuestsAndEphemerals(ScriptedUpdates):
    """Mixed into ``FakeBotAPI``, whose state it uses."""

    file_ids: set[str]

    def _guest_state(self) -> None:
        self.guest_queries: dict[str, dict[str, Any]] = {}  # id -> {user_id, chat_id, at, answered}
        self.guest_only_chats: set[int] = set()  # chats the bot is not a member of
        self.members: dict[int, set[int]] = {}  # group chat id -> users who wrote there
        self.inline_messages: dict[str, dict[str, Any]] = {}  # inline message id -> as it stands now
        self.ephemerals: dict[tuple[int, int, int], dict[str, Any]] = {}  # (chat, receiver, id) -> message
        self.guest_answer_timeout_s = 10.0  # not documented; the fake's choice, a test may shorten it
        self._guest_ids = itertools.count(1)
        self._ephemeral_ids = itertools.count(1)

    # --- scripting ------------------------------------------------------------------------------
    def joined(self, chat_id: int, user_id: int) -> None:
        """``user_id`` is a member of group ``chat_id`` (writing there makes one)."""
        if chat_id < 0:
            self.members.setdefault(chat_id, set()).add(user_id)

    def guest_query(
        self, user_id: int, text: str, *, chat_id: int, language_code: str = "en", first_name: str = "Ann"
    ) -> str:
        """``text`` (mentioning the bot) written by ``user_id`` in ``chat_id``, a chat the bot is
        not a member of unless it already knows it; returns the guest query id."""
        if chat_id not in self.chats:
            self.guest_only_chats.add(chat_id)
        query_id = f"gq{next(self._guest_ids)}"
        self.guest_queries[query_id] = {
            "user_id": user_id,
            "chat_id": chat_id,
            "at": time.monotonic(),
            "answered": False,
        }
        self.push_update(
            {
                "guest_message": {
                    "message_id": next(self._message_ids),
                    "date": int(time.time()),
                    "chat": self.chat(chat_id),
                    "from": {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code},
                    "text": text,
                    "guest_query_id": query_id,
                }
            }
        )
        return query_id

    def press_inline(self, user_id: int, inline_message_id: str, data: str, *, language_code: str = "en") -> str:
        """A press of a button with ``data`` under the inline message ``inline_message_id``."""
        query_id = f"icq{next(self._guest_ids)}"
        self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": {"id": user_id, "is_bot": False, "first_name": "Bob", "language_code": language_code},
                    "chat_instance": f"inline-{inline_message_id}",
                    "inline_message_id": inline_message_id,
                    "data": data,
                }
            }
        )
        return query_id

    def press_ephemeral(self, user_id: int, chat_id: int, ephemeral_message_id: int, data: str) -> str:
        """A press of a button with ``data`` under an ephemeral message (only its receiver can)."""
        message = next(
            m for (c, r, e), m in self.ephemerals.items() if (c, r, e) == (chat_id, user_id, ephemeral_message_id)
        )
        query_id = f"ecq{next(self._guest_ids)}"
        self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": "en"},
                    "chat_instance": str(chat_id),
                    "message": message,
                    "data": data,
                }
            }
        )
        return query_id

    # --- checks the server makes on every call ----------------------------------------------------
    def check_reachable(self, params: dict[str, Any]) -> None:
        chat_id = params.get("chat_id")
        if chat_id is not None and int(chat_id) in self.guest_only_chats:
            raise rules.BadRequest("chat not found")

    # --- methods --------------------------------------------------------------------------------
    async def _m_answerGuestQuery(self, params, files):
        query = self.guest_queries.get(str(params.get("guest_query_id")))
        if query is None or query["answered"] or time.monotonic() - query["at"] > self.guest_answer_timeout_s:
            raise rules.BadRequest(QUERY_TOO_OLD)
        result = params.get("result")
        if not isinstance(result, dict):
            raise rules.BadRequest("can't parse inline query result JSON object")
        rules.check_inline_answer({"results": [result]}, self.file_ids)
        query["answered"] = True
        inline_id = f"AgAAA{next(self._guest_ids):06d}guest"
        content = result.get("input_message_content") or {}
        message: dict[str, Any] = {
            "chat_id": query["chat_id"],
            "via_guest_of": query["user_id"],
            "text": content.get("message_text"),
        }
        if result.get("type") == "photo":
            message = {**message, "text": None, "photo": result.get("photo_file_id"), "caption": result.get("caption")}
        if isinstance(result.get("reply_markup"), dict):
            message["reply_markup"] = result["reply_markup"]
        self.inline_messages[inline_id] = message
        return {"inline_message_id": inline_id}

    def inline_to_edit(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """The inline message an edit names (None: the edit names a chat's message)."""
        inline_id = params.get("inline_message_id")
        if inline_id is None:
            return None
        message = self.inline_messages.get(str(inline_id))
        if message is None:
            raise rules.BadRequest("message to edit not found")
        return message

    def edit_inline(
        self, method: str, message: dict[str, Any], params: dict[str, Any], files: dict[str, bytes]
    ) -> bool:
        markup = params.get("reply_markup") if isinstance(params.get("reply_markup"), dict) else None
        before = dict(message)
        if method == "editMessageText":
            if message.get("text") is None:
                raise rules.BadRequest("there is no text in the message to edit")
            rules.check_text(params, edit=True)
            message["text"] = params.get("text", "")
        elif method == "editMessageCaption":
            rules.check_caption(params)
            message["caption"] = params.get("caption")
        elif method == "editMessageMedia":
            self._inline_media(message, params, files)
        if method != "editMessageMedia" or "reply_markup" in params:
            message.pop("reply_markup", None)
            if markup and markup.get("inline_keyboard"):
                message["reply_markup"] = markup
        if message == before:
            raise rules.BadRequest(
                "message is not modified: specified new message content and reply markup are exactly the same "
                "as a current content and reply markup of the message"
            )
        return True

    def _inline_media(self, message: dict[str, Any], params: dict[str, Any], files: dict[str, bytes]) -> None:
        media = params.get("media")
        if not isinstance(media, dict):
            raise rules.BadRequest("can't parse InputMedia: media not found")
        ref = str(media.get("media") or "")
        if ref == "<file>" or ref.startswith("attach://") or "media" in files:
            raise rules.BadRequest("can't upload a new file to an inline message: send a file_id or a URL")
        if media.get("type") != "photo":
            raise rules.BadRequest("wrong type of the web page content")
        if ref not in self.file_ids and rules.button_url_refused(ref):
            raise rules.BadRequest("wrong file identifier/HTTP URL specified")
        rules.check_caption(media)
        message.pop("text", None)
        message["photo"] = ref
        message["caption"] = media.get("caption")
        message["has_media_spoiler"] = media.get("has_spoiler") in (True, "true")

    def ephemeral(self, params: dict[str, Any], text: str) -> dict[str, Any] | None:
        """The ephemeral message a sendMessage asks for (None: an ordinary one)."""
        wanted = params.get("ephemeral_message_parameters")
        if wanted is None:
            return None
        if not isinstance(wanted, dict) or "receiver_user_id" not in wanted:
            raise rules.BadRequest("can't parse ephemeral message parameters JSON object")
        chat_id, receiver = int(params["chat_id"]), int(wanted["receiver_user_id"])
        if receiver not in self.members.get(chat_id, set()):
            raise rules.BadRequest("USER_NOT_PARTICIPANT")
        ephemeral_id = next(self._ephemeral_ids)
        message: dict[str, Any] = {
            "message_id": 0,
            "ephemeral_message_id": ephemeral_id,
            "date": int(time.time()),
            "chat": self.chat(chat_id),
            "from": self.bot_user,
            "receiver_user": {"id": receiver, "is_bot": False, "first_name": "Ann"},
            "text": text,
        }
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self.ephemerals[(chat_id, receiver, ephemeral_id)] = message
        return message

    def _ephemeral_named(self, params: dict[str, Any], what: str) -> tuple[int, int, int]:
        key = (int(params["chat_id"]), int(params["receiver_user_id"]), int(params["ephemeral_message_id"]))
        if key not in self.ephemerals:
            raise rules.BadRequest(f"message to {what} not found")
        return key

    async def _m_editEphemeralMessageText(self, params, files):
        message = self.ephemerals[self._ephemeral_named(params, "edit")]
        rules.check_text(params, edit=True)
        markup = params.get("reply_markup") if isinstance(params.get("reply_markup"), dict) else None
        if message.get("text") == params.get("text") and message.get("reply_markup") == markup:
            raise rules.BadRequest(
                "message is not modified: specified new message content and reply markup are exactly the same "
                "as a current content and reply markup of the message"
            )
        message["text"] = params.get("text")
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        return True

    async def _m_deleteEphemeralMessage(self, params, files):
        del self.ephemerals[self._ephemeral_named(params, "delete")]
        return True

    def ephemerals_to(self, chat_id: int, receiver: int | None = None) -> list[dict[str, Any]]:
        """The ephemeral messages of a chat (of one receiver), as they stand now."""
        return [m for (c, r, _), m in self.ephemerals.items() if c == chat_id and receiver in (None, r)]
