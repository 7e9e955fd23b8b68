"""A local fake Telegram Bot API server (aiohttp) for driving the real aiogram stack in tests.

It serves ``getUpdates`` from a script of updates (long polling included): messages, commands and
button presses (callback queries on the messages the bot sent); it records every call
(``sendMessage``, ``sendPhoto``, ``sendDocument``, ``editMessageText``, ``deleteMessage``,
``answerCallbackQuery``, ``sendChatAction``, ``setMyCommands``, ``setWebhook``...) with its
parameters, uploaded files and time; it keeps the chat as a user would see it (edits applied,
deleted messages gone). It is as strict as Telegram (tests/fakes/telegram/rules.py): a URL
button on localhost, an IP address or a dotless host refuses the whole call with
``Bad Request: BUTTON_URL_INVALID``; callback data over 64 bytes, texts over 4096 and captions over
1024 characters, albums of other than 2-10 items, unparsable HTML, "message is not modified",
"message to edit not found" (an unknown or a deleted message), "message to delete not found" (a
second delete of one message), replies to unknown messages and bad inline query answers are
refused with Telegram's own descriptions (a refused call is recorded with its ``error``). Chats
are private (positive ids) or groups (negative ids); a long paste arrives split at 4096
characters, as clients send it; ``batch_size`` makes updates sent at once arrive in successive
getUpdates answers (``batches`` records them). Guest queries, inline messages edited by their id and
ephemeral messages are guests.py's. It can be told to fail: answer 429 with
``retry_after``, 502, or 403 for a user who blocked the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.telegram import rules
from tests.fakes.telegram.guests import GuestsAndEphemerals
from tests.fakes.telegram.payments import FakeStars


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes]
    at: float
    token: str

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None

    @property
    def ok(self) -> bool:
        return "_failed" not in self.params

    @property
    def text(self) -> str:
        if self.method == "sendMediaGroup":
            media = self.params.get("media") or []
            return str((media[0].get("caption") if media and isinstance(media[0], dict) else "") or "")
        return str(self.params.get("text") or self.params.get("caption") or "")

    @property
    def error(self) -> str:
        """The description of a refused call ("" when it went through)."""
        return str(self.params.get("_error", ""))

    def buttons(self) -> list[dict[str, Any]]:
        """The inline keyboard's buttons, row by row flattened."""
        markup = self.params.get("reply_markup") or {}
        if isinstance(markup, str):
            markup = _maybe_json(markup)
        return [b for row in (markup or {}).get("inline_keyboard", []) for b in row]

    def button(self, prefix: str) -> dict[str, Any]:
        """The first button whose text starts with ``prefix``."""
        for b in self.buttons():
            if b["text"].startswith(prefix):
                return b
        raise AssertionError(f"no button {prefix!r} in {[b['text'] for b in self.buttons()]}")


# Methods after which the chat shows a new or changed message: what per-chat limits are about.
MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "sendMediaGroup",
    }
)
# Methods that take an inline keyboard (checked before anything is sent).
MARKUP_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "editMessageMedia",
        "editEphemeralMessageText",
    }
)


@dataclass
class Failure:
    status: int
    description: str
    retry_after: int | None = None
    times: int = 1


@dataclass
class FakeBotAPI(GuestsAndEphemerals, FakeStars):
    token: str = "123456:TEST-token-for-the-fake-server"
    bot_user: dict[str, Any] = field(
        default_factory=lambda: {"id": 123456, "is_bot": True, "first_name": "Prompt2Pic", "username": "prompt2pic_bot"}
    )
    calls: list[Call] = field(default_factory=list)
    blocked_chats: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._new_update = asyncio.Event()
        self._failures: dict[str, list[Failure]] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.messages: dict[int, dict[str, Any]] = {}  # what the bot sent, as it stands now
        self.polls = 0  # getUpdates calls so far (the bot is polling once this is above 0)
        # When each getUpdates answer went and the update ids it carried (non-empty answers
        # only), and an optional cap on how many one answer carries (None: Telegram's 100):
        # updates a user sent in one go then reach the bot as quick successive batches.
        self.batches: list[tuple[float, list[int]]] = []
        self.batch_size: int | None = None
        # As Telegram: an update is confirmed once getUpdates is called with a higher offset; a
        # bot that asks without an offset (a restarted one) gets every unconfirmed update again.
        self.confirmed = 0
        self._callback_ids = itertools.count(1)
        self._inline_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self.chats: dict[int, dict[str, Any]] = {}  # chat id -> the chat object updates carry
        self.user_messages: set[tuple[int, int]] = set()  # (chat id, message id) users sent
        self.user_message_bodies: dict[tuple[int, int], dict[str, Any]] = {}  # their text messages
        self.file_ids: set[str] = set()  # of photos and documents the bot sent
        self.inline_queries: dict[str, dict[str, Any]] = {}  # id -> query (answered: "answered")
        # Faults as Telegram shows them: a revoked token (401 to every call), another instance
        # polling (409 to getUpdates), and the webhook Telegram holds with its last delivery error.
        self.revoked = False
        self.other_poller = False
        self.webhook_url = ""
        self.webhook_error: tuple[int, str] | None = None  # (unix time, message)
        self._guest_state()  # guest queries, inline and ephemeral messages (guests.py)
        self._stars_init()  # invoices, pre-checkout queries, charges and refunds (payments.py)

    # --- server ------------------------------------------------------------------------------
    async def start(self, port: int = 0) -> str:
        """Serve on ``port`` (0: any free one), e.g. the port a bot started earlier already tries."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def fail(
        self, method: str, status: int, description: str, *, retry_after: int | None = None, times: int = 1
    ) -> None:
        self._failures.setdefault(method, []).append(Failure(status, description, retry_after, times))

    def heal(self, method: str) -> None:
        """Failures still planned for ``method`` are dropped: it works again."""
        self._failures.pop(method, None)

    # --- reading what the bot did -----------------------------------------------------------
    def calls_of(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and (chat_id is None or c.chat_id == chat_id)]

    def messages_to(self, chat_id: int) -> list[Call]:
        """Successful calls that put a new or changed message in the chat, in order."""
        return [c for c in self.calls if c.chat_id == chat_id and c.ok and c.method in MESSAGE_METHODS]

    def visible(self, chat_id: int) -> list[dict[str, Any]]:
        """The chat's messages from the bot as the user sees them now (edits applied, deletions gone)."""
        return [m for m in self.messages.values() if m["chat"]["id"] == chat_id]

    def texts_to(self, chat_id: int) -> list[str]:
        return [
            c.params.get("text", "")
            for c in self.calls
            if c.chat_id == chat_id and c.method in ("sendMessage", "editMessageText")
        ]

    async def wait_polling(self, timeout: float = 15.0) -> None:
        """Until the bot has asked for updates at least once."""
        deadline = time.monotonic() + timeout
        while not self.polls:
            if time.monotonic() > deadline:
                raise AssertionError("the bot never polled for updates")
            await asyncio.sleep(0.01)

    async def wait_for(self, predicate, timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [c for c in self.calls if predicate(c)]
            if found:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching Bot API call within {timeout}s; calls: {[c.method for c in self.calls]}")

    # --- handling ------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        # A call counts from when it arrived, not from when its body (a photo: hundreds of KB,
        # read slowly on a loaded machine) was read: calls the bot spread out must not bunch up here.
        arrived = time.monotonic()
        token = request.match_info["token"]
        method = request.match_info["method"]
        params: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            params = await request.json()
        else:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = value.file.read()
                else:
                    params[key] = _maybe_json(value if isinstance(value, str) else bytes(value).decode())
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                files[key] = files.pop(value.removeprefix("attach://"), b"")
                params[key] = "<file>"
        if token != self.token or self.revoked:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        if method == "getUpdates" and (self.other_poller or self.webhook_url):
            self.polls += 1
            description = (
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
                if self.other_poller
                else "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
                "the webhook first"
            )
            return web.json_response({"ok": False, "error_code": 409, "description": description}, status=409)
        call: Call | None = None
        if method != "getUpdates":
            call = Call(method, params, files, arrived, token)
            failure = self._take_failure(method)
            if failure:
                call.params["_failed"] = failure.status
                self.calls.append(call)
                body: dict[str, Any] = {"ok": False, "error_code": failure.status, "description": failure.description}
                if failure.retry_after is not None:
                    body["parameters"] = {"retry_after": failure.retry_after}
                return web.json_response(body, status=failure.status)
            if call.chat_id in self.blocked_chats and method != "answerCallbackQuery":
                call.params["_failed"] = 403
                self.calls.append(call)
                description = (
                    "Forbidden: bot was blocked by the user"
                    if (call.chat_id or 0) > 0
                    else "Forbidden: bot was kicked from the group chat"
                )
                call.params["_error"] = description
                return web.json_response(
                    {"ok": False, "error_code": 403, "description": description},
                    status=403,
                )
            self.calls.append(call)
        handler = getattr(self, f"_m_{method}", None)
        try:
            if method in MARKUP_METHODS:
                rules.check_markup(params.get("reply_markup"))
            if method != "answerCallbackQuery":
                self.check_reachable(params)  # a chat known only through guest queries is not the bot's
            self._check_reply(params)
            result = await handler(params, files) if handler else True
        except (_BadRequest, rules.BadRequest) as exc:
            if call is not None:
                call.params["_failed"] = 400
                call.params["_error"] = str(exc)
            return web.json_response({"ok": False, "error_code": 400, "description": str(exc)}, status=400)
        if call is not None and isinstance(result, dict) and "message_id" in result:
            call.params["_message_id"] = result["message_id"]
            if "ephemeral_message_id" in result:
                call.params["_ephemeral_message_id"] = result["ephemeral_message_id"]
        if call is not None and isinstance(result, dict) and "inline_message_id" in result:
            call.params["_inline_message_id"] = result["inline_message_id"]
        if call is not None and isinstance(result, list) and result and "message_id" in result[0]:
            call.params["_message_ids"] = [m["message_id"] for m in result]
        return web.json_response({"ok": True, "result": result})

    def _check_reply(self, params: dict[str, Any]) -> None:
        """A reply to a message the chat does not have is refused unless the bot allows it."""
        reply = params.get("reply_parameters")
        if isinstance(reply, str):
            reply = _maybe_json(reply)
        if not isinstance(reply, dict) or "message_id" not in reply:
            return
        chat_id, message_id = int(reply.get("chat_id") or params.get("chat_id") or 0), int(reply["message_id"])
        known = (chat_id, message_id) in self.user_messages or (
            message_id in self.messages and self.messages[message_id]["chat"]["id"] == chat_id
        )
        if not known and reply.get("allow_sending_without_reply") not in (True, "true"):
            raise rules.BadRequest("message to be replied not found")

    def _take_failure(self, method: str) -> Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure

    async def _m_getMe(self, params, files):
        return self.bot_user

    async def _m_setWebhook(self, params, files):
        self.webhook_url = str(params.get("url") or "")
        return True

    async def _m_deleteWebhook(self, params, files):
        self.webhook_url = ""
        return True

    async def _m_getWebhookInfo(self, params, files):
        info: dict[str, Any] = {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": 0}
        if self.webhook_url and self.webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self.webhook_error
        return info

    async def _m_getUpdates(self, params, files):
        self.polls += 1
        self.confirmed = max(self.confirmed, int(params.get("offset") or 0))
        offset = self.confirmed
        timeout = min(float(params.get("timeout") or 0), 1.0)
        limit = int(params.get("limit") or 100)
        ready = [u for u in self._updates if u["update_id"] >= offset]
        if not ready and timeout:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
            ready = [u for u in self._updates if u["update_id"] >= offset]
        limit = min(limit, self.batch_size or limit)
        if ready[:limit]:
            self.batches.append((time.monotonic(), [u["update_id"] for u in ready[:limit]]))
        return ready[:limit]

    def _message(self, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat(int(params["chat_id"])),
            "from": self.bot_user,
            **{k: v for k, v in extra.items() if v is not None},
        }
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        reply = params.get("reply_parameters")
        if isinstance(reply, str):
            reply = _maybe_json(reply)
        if isinstance(reply, dict) and "message_id" in reply:  # as Telegram: the message replied to
            key = (message["chat"]["id"], int(reply["message_id"]))
            replied = self.user_message_bodies.get(key) or self.messages.get(key[1])
            if replied is not None and replied["chat"]["id"] == key[0]:
                message["reply_to_message"] = {k: v for k, v in replied.items() if k != "reply_to_message"}
        self.messages[message["message_id"]] = message
        return message

    async def _m_sendMessage(self, params, files):
        rules.check_text(params)
        ephemeral = self.ephemeral(params, params.get("text", ""))
        return ephemeral if ephemeral is not None else self._message(params, text=params.get("text", ""))

    def _to_edit(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(int(params["message_id"]))
        if message is None or message["chat"]["id"] != int(params["chat_id"]):
            raise _BadRequest("Bad Request: message to edit not found")
        return message

    async def _m_editMessageReplyMarkup(self, params, files):
        inline = self.inline_to_edit(params)
        if inline is not None:
            return self.edit_inline("editMessageReplyMarkup", inline, params, files)
        message = self._to_edit(params)
        markup = params.get("reply_markup")
        if message.get("reply_markup") == (
            markup if isinstance(markup, dict) and markup.get("inline_keyboard") else None
        ):
            raise _BadRequest(NOT_MODIFIED)
        if isinstance(markup, dict) and markup.get("inline_keyboard"):
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return message

    async def _m_editMessageCaption(self, params, files):
        inline = self.inline_to_edit(params)
        if inline is not None:
            return self.edit_inline("editMessageCaption", inline, params, files)
        message = self._to_edit(params)
        rules.check_caption(params)
        markup = params.get("reply_markup")
        if message.get("caption") == params.get("caption") and message.get("reply_markup") == markup:
            raise _BadRequest(NOT_MODIFIED)
        message["caption"] = params.get("caption")
        message["edit_date"] = int(time.time())
        return message

    async def _m_editMessageMedia(self, params, files):
        inline = self.inline_to_edit(params)
        if inline is None:  # (the bot edits media only in inline messages)
            raise _BadRequest("Bad Request: the fake edits media of inline messages only")
        return self.edit_inline("editMessageMedia", inline, params, files)

    async def _m_editMessageText(self, params, files):
        inline = self.inline_to_edit(params)
        if inline is not None:
            return self.edit_inline("editMessageText", inline, params, files)
        message = self._to_edit(params)
        if "text" not in message:
            raise _BadRequest("Bad Request: there is no text in the message to edit")
        rules.check_text(params, edit=True)
        markup = params.get("reply_markup")
        if message.get("text") == params.get("text", "") and message.get("reply_markup") == markup:
            raise _BadRequest(NOT_MODIFIED)
        message["text"] = params.get("text", "")
        if isinstance(markup, dict):
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return message

    async def _m_deleteMessage(self, params, files):
        message = self.messages.get(int(params["message_id"]))
        if message is None or message["chat"]["id"] != int(params["chat_id"]):
            raise _BadRequest("Bad Request: message to delete not found")
        del self.messages[int(params["message_id"])]
        return True

    def _photo(self, data: bytes) -> list[dict[str, Any]]:
        from io import BytesIO

        from PIL import Image

        if len(data) > 10 * 1024 * 1024:  # Telegram's photo limits (documents go up to 50 MB)
            raise _BadRequest(
                f"Bad Request: file of size {len(data)} bytes is too big for a photo; the maximum "
                "size is 10485760 bytes"
            )
        try:
            width, height = Image.open(BytesIO(data)).size
        except Exception:
            raise _BadRequest("Bad Request: IMAGE_PROCESS_FAILED") from None
        if width + height > 10_000 or max(width, height) / min(width, height) > 20:
            raise _BadRequest("Bad Request: PHOTO_INVALID_DIMENSIONS")
        file_id = f"photo-{next(self._file_ids)}"
        self.file_ids.add(file_id)
        return [
            {"file_id": file_id, "file_unique_id": file_id, "width": width, "height": height, "file_size": len(data)}
        ]

    def _document(self, data: bytes) -> dict[str, Any]:
        if not data:
            raise _BadRequest("Bad Request: file must be non-empty")
        file_id = f"doc-{next(self._file_ids)}"
        self.file_ids.add(file_id)
        return {"file_id": file_id, "file_unique_id": file_id, "file_size": len(data), "file_name": "image.png"}

    async def _m_sendPhoto(self, params, files):
        rules.check_caption(params)
        photo = self._photo(files.get("photo", b""))
        spoiler = _boolean(params, "has_spoiler")
        return self._message(params, photo=photo, caption=params.get("caption"), has_media_spoiler=spoiler or None)

    async def _m_sendDocument(self, params, files):
        rules.check_caption(params)
        document = self._document(files.get("document", b""))
        return self._message(params, document=document, caption=params.get("caption"))

    async def _m_sendMediaGroup(self, params, files):
        if params.get("reply_markup") is not None:  # the real server ignores it; the bot must not count on it
            raise _BadRequest("Bad Request: sendMediaGroup takes no reply_markup")
        media = rules.check_album(params.get("media"))
        contents = []
        for item in media:  # every item is read (and may refuse the album) before anything is sent
            ref = str(item.get("media") or "")
            data = files.get(ref.removeprefix("attach://"), b"") if ref.startswith("attach://") else b""
            if not data:
                raise _BadRequest("Bad Request: can't parse InputMedia: media not found")
            if item.get("type") == "photo":
                contents.append({"photo": self._photo(data), "caption": item.get("caption")})
            else:
                contents.append({"document": self._document(data), "caption": item.get("caption")})
        group_id = str(next(self._message_ids) * 7919)
        item_files = {
            f"media{i}": files.get(str(m["media"]).removeprefix("attach://"), b"") for i, m in enumerate(media)
        }
        files.clear()
        files.update(item_files)  # the call's files: media0, media1... in album order
        return [self._message(params, media_group_id=group_id, **content) for content in contents]

    async def _m_answerInlineQuery(self, params, files):
        query = self.inline_queries.get(str(params.get("inline_query_id")))
        if query is None or query.get("answered"):
            raise _BadRequest("Bad Request: query is too old and response timeout expired or query ID is invalid")
        rules.check_inline_answer(params, self.file_ids)
        query["answered"] = True
        return True

    async def _m_answerCallbackQuery(self, params, files):
        if len(str(params.get("text") or "")) > 200:
            raise _BadRequest("Bad Request: MESSAGE_TOO_LONG")
        return True


NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class _BadRequest(Exception):
    pass


def _boolean(params: dict[str, Any], name: str) -> bool:
    """A Boolean parameter as Telegram reads it: JSON true/false, or "true"/"false" in a form;
    anything else is refused (an absent one is false)."""
    value = params.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise _BadRequest(f'Bad Request: field "{name}" must be of type Boolean')


def _maybe_json(value: str) -> Any:
    if value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
