"""A local fake Telegram Bot API server (aiohttp) for driving the real aiogram stack in tests.

It serves ``getUpdates`` from a script of updates (long polling included): messages, commands and
button presses (callback queries on the messages the bot sent); it records every call
(``sendMessage``, ``sendPhoto``, ``sendDocument``, ``editMessageText``, ``deleteMessage``,
``answerCallbackQuery``, ``sendChatAction``, ``setMyCommands``, ``setWebhook``...) with its
parameters, uploaded files and time; it keeps the chat as a user would see it (edits applied,
deleted messages gone) and answers like Telegram where tests depend on it ("message is not
modified", "message to edit not found"). It can be told to fail: answer 429 with ``retry_after``,
502, or 403 for a user who blocked the bot.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


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
        return str(self.params.get("text") or self.params.get("caption") or "")

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
    {"sendMessage", "sendPhoto", "sendDocument", "editMessageText", "editMessageCaption",
     "editMessageReplyMarkup", "sendMediaGroup"}
)


@dataclass
class Failure:
    status: int
    description: str
    retry_after: int | None = None
    times: int = 1


@dataclass
class FakeBotAPI:
    token: str = "123456:TEST-token-for-the-fake-server"
    bot_user: dict[str, Any] = field(
        default_factory=lambda: {
            "id": 123456, "is_bot": True, "first_name": "Prompt2Pic", "username": "prompt2pic_bot"
        }
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
        # As Telegram: an update is confirmed once getUpdates is called with a higher offset; a
        # bot that asks without an offset (a restarted one) gets every unconfirmed update again.
        self.confirmed = 0
        self._callback_ids = itertools.count(1)

    # --- server ------------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    # --- scripting -----------------------------------------------------------------------------
    def push_update(self, update: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **update})
        self._new_update.set()
        return update_id

    def text_update(
        self, user_id: int, text: str, *, language_code: str = "en", first_name: str = "Ann"
    ) -> dict[str, Any]:
        """A private message from a user as an update (commands get their bot_command entity),
        not queued: for posting to a webhook."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "from": {
                "id": user_id, "is_bot": False, "first_name": first_name,
                "language_code": language_code,
            },
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": next(self._update_ids), "message": message}

    def send_text(
        self, user_id: int, text: str, *, language_code: str = "en", first_name: str = "Ann"
    ) -> int:
        """Script a private message from a user (commands get their bot_command entity)."""
        update = self.text_update(user_id, text, language_code=language_code, first_name=first_name)
        update_id = update.pop("update_id")
        self._updates.append({"update_id": update_id, **update})
        self._new_update.set()
        return update_id

    def send_sticker(self, user_id: int, language_code: str = "en") -> int:
        return self.push_update({"message": {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language_code},
            "sticker": {
                "file_id": "stk", "file_unique_id": "stk", "type": "regular",
                "width": 512, "height": 512, "is_animated": False, "is_video": False,
            },
        }})

    def press(self, user_id: int, message_id: int, data: str, *, language_code: str = "en") -> str:
        """Script a press of an inline button with ``data`` under the bot's message ``message_id``."""
        query_id = f"cq{next(self._callback_ids)}"
        message = self.messages.get(message_id) or {
            "message_id": message_id, "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"}, "from": self.bot_user, "text": "",
        }
        self.push_update({"callback_query": {
            "id": query_id,
            "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language_code},
            "chat_instance": str(user_id),
            "message": message,
            "data": data,
        }})
        return query_id

    def fail(self, method: str, status: int, description: str, *, retry_after: int | None = None, times: int = 1) -> None:
        self._failures.setdefault(method, []).append(Failure(status, description, retry_after, times))

    # --- reading what the bot did -----------------------------------------------------------
    def calls_of(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [
            c for c in self.calls
            if c.method == method and (chat_id is None or c.chat_id == chat_id)
        ]

    def messages_to(self, chat_id: int) -> list[Call]:
        """Successful calls that put a new or changed message in the chat, in order."""
        return [c for c in self.calls if c.chat_id == chat_id and c.ok and c.method in MESSAGE_METHODS]

    def visible(self, chat_id: int) -> list[dict[str, Any]]:
        """The chat's messages from the bot as the user sees them now (edits applied, deletions gone)."""
        return [m for m in self.messages.values() if m["chat"]["id"] == chat_id]

    def texts_to(self, chat_id: int) -> list[str]:
        out = []
        for c in self.calls:
            if c.chat_id == chat_id and c.method in ("sendMessage", "editMessageText"):
                out.append(c.params.get("text", ""))
        return out

    async def wait_polling(self, timeout: float = 15.0) -> None:
        """Until the bot has asked for updates at least once."""
        deadline = time.monotonic() + timeout
        while not self.polls:
            if time.monotonic() > deadline:
                raise AssertionError("the bot never polled for updates")
            await asyncio.sleep(0.01)

    async def wait_for(self, predicate, timeout: float = 10.0) -> list[Call]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [c for c in self.calls if predicate(c)]
            if found:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching Bot API call within {timeout}s; calls: {[c.method for c in self.calls]}")

    # --- handling ------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
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
                    params[key] = _maybe_json(value)
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                files[key] = files.pop(value.removeprefix("attach://"), b"")
                params[key] = "<file>"
        if token != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        call: Call | None = None
        if method != "getUpdates":
            call = Call(method, params, files, time.monotonic(), token)
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
                return web.json_response(
                    {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
                    status=403,
                )
            self.calls.append(call)
        handler = getattr(self, f"_m_{method}", None)
        try:
            result = await handler(params, files) if handler else True
        except _BadRequest as exc:
            if call is not None:
                call.params["_failed"] = 400
            return web.json_response({"ok": False, "error_code": 400, "description": str(exc)}, status=400)
        if call is not None and isinstance(result, dict) and "message_id" in result:
            call.params["_message_id"] = result["message_id"]
        return web.json_response({"ok": True, "result": result})

    def _take_failure(self, method: str) -> Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure

    async def _m_getMe(self, params, files):  # type: ignore[no-untyped-def]
        return self.bot_user

    async def _m_getUpdates(self, params, files):  # type: ignore[no-untyped-def]
        self.polls += 1
        self.confirmed = max(self.confirmed, int(params.get("offset") or 0))
        offset = self.confirmed
        timeout = min(float(params.get("timeout") or 0), 1.0)
        limit = int(params.get("limit") or 100)
        ready = [u for u in self._updates if u["update_id"] >= offset]
        if not ready and timeout:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), timeout)
            except TimeoutError:
                pass
            ready = [u for u in self._updates if u["update_id"] >= offset]
        return ready[:limit]

    def _message(self, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": int(params["chat_id"]), "type": "private"},
            "from": self.bot_user,
            **{k: v for k, v in extra.items() if v is not None},
        }
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self.messages[message["message_id"]] = message
        return message

    async def _m_sendMessage(self, params, files):  # type: ignore[no-untyped-def]
        return self._message(params, text=params.get("text", ""))

    async def _m_editMessageText(self, params, files):  # type: ignore[no-untyped-def]
        message = self.messages.get(int(params["message_id"]))
        if message is None or message["chat"]["id"] != int(params["chat_id"]):
            raise _BadRequest("Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        if message.get("text") == params.get("text", "") and message.get("reply_markup") == markup:
            raise _BadRequest(
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message"
            )
        message["text"] = params.get("text", "")
        if isinstance(markup, dict):
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return message

    async def _m_deleteMessage(self, params, files):  # type: ignore[no-untyped-def]
        message = self.messages.get(int(params["message_id"]))
        if message is None or message["chat"]["id"] != int(params["chat_id"]):
            raise _BadRequest("Bad Request: message to delete not found")
        del self.messages[int(params["message_id"])]
        return True

    async def _m_sendPhoto(self, params, files):  # type: ignore[no-untyped-def]
        from io import BytesIO

        from PIL import Image

        data = files.get("photo", b"")
        if len(data) > 10 * 1024 * 1024:  # Telegram's photo limits (documents go up to 50 MB)
            raise _BadRequest("Bad Request: PHOTO_INVALID_DIMENSIONS")
        width, height = Image.open(BytesIO(data)).size
        if width + height > 10_000 or max(width, height) / min(width, height) > 20:
            raise _BadRequest("Bad Request: PHOTO_INVALID_DIMENSIONS")
        photo = [{"file_id": "p1", "file_unique_id": "p1", "width": width, "height": height, "file_size": len(data)}]
        spoiler = _boolean(params, "has_spoiler")
        return self._message(params, photo=photo, caption=params.get("caption"), has_media_spoiler=spoiler or None)

    async def _m_sendDocument(self, params, files):  # type: ignore[no-untyped-def]
        data = files.get("document", b"")
        document = {"file_id": "d1", "file_unique_id": "d1", "file_size": len(data), "file_name": "image.png"}
        return self._message(params, document=document, caption=params.get("caption"))


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
