"""What real Telegram refuses, for the fake Bot API server (tests/fakes/telegram/server.py).

Each check raises ``BadRequest`` with the description Telegram's Bot API server gives (the
``Bad Request: ...`` texts of tdlib/telegram-bot-api's ``Client.cpp`` and of Telegram's own
MTProto errors, which the server passes through in capitals). Telegram checks the whole request
before it sends anything: one bad button refuses the photo it was attached to.

- Inline keyboard URL buttons: http(s) or tg:// only; an http(s) host that is ``localhost``, an IP
  address or a name without a dot is refused (``BUTTON_URL_INVALID``). callback_data 1-64 bytes
  (``BUTTON_DATA_INVALID``); copy_text 1-256 characters (``BUTTON_COPY_TEXT_INVALID``, MTProto's
  error for keyboardButtonCopy.copy_text, passed through in capitals). A button with no action:
  "text buttons are unallowed".
- Text 1-4096 characters after entity parsing, captions 0-1024; with ``parse_mode=HTML`` only
  Telegram's tags, and a bare ``<`` or ``&`` cannot be parsed.
- Albums (``sendMediaGroup``): none is "there are no messages to send", more than 10 "too many
  messages to send as an album". The Bot API documents 2-10 items; TDLib would send a single item
  as a lone message, the fake refuses it (the bot must use sendPhoto for one picture).
- Inline query answers: at most 50 results with unique ids of 1-64 bytes, a start parameter of
  1-64 characters ``A-Z a-z 0-9 _ -``, one answer per query.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
COPY_TEXT_LIMIT = 256  # CopyTextButton.text: 1-256 characters
MAX_BUTTONS = 100
ALBUM_MAX = 10
INLINE_RESULTS_MAX = 50

BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "web_app",
    "login_url",
    "pay",
    "callback_game",
    "copy_text",
)
HTML_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}
_START_PARAM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TAG = re.compile(r"</?([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*)?>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


class BadRequest(Exception):
    """A 400 answer; ``str(exc)`` is the whole description ("Bad Request: ...")."""

    def __init__(self, what: str) -> None:
        super().__init__(f"Bad Request: {what}")


def button_url_refused(url: str) -> bool:
    """True for a URL Telegram refuses on an inline button."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return True
    scheme = parts.scheme.lower()
    if scheme == "tg":
        return not (parts.netloc or parts.path)
    if scheme not in ("http", "https"):
        return True
    try:
        host = parts.hostname or ""
    except ValueError:
        return True
    if not host or host == "localhost" or host.endswith(".localhost") or "." not in host:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_markup(markup: Any) -> None:
    """An inline keyboard as Telegram checks it (other keyboards are not used by the bot)."""
    if markup in (None, "", {}):
        return
    if not isinstance(markup, dict):
        raise BadRequest("object expected as reply markup")
    if "inline_keyboard" not in markup:
        return
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise BadRequest('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
    buttons = [b for row in rows for b in row]
    if len(buttons) > MAX_BUTTONS:
        raise BadRequest("reply markup is too long")
    for button in buttons:
        check_button(button)


def check_button(button: Any) -> None:
    if not isinstance(button, dict) or not str(button.get("text") or "").strip():
        raise BadRequest("can't parse inline keyboard button: Text must be non-empty")
    actions = [a for a in BUTTON_ACTIONS if button.get(a) is not None]
    if not actions:
        raise BadRequest("text buttons are unallowed in the inline keyboard")
    if "url" in actions and button_url_refused(str(button["url"])):
        raise BadRequest("BUTTON_URL_INVALID")
    if "callback_data" in actions:
        size = len(str(button["callback_data"]).encode())
        if not 1 <= size <= CALLBACK_DATA_LIMIT:
            raise BadRequest("BUTTON_DATA_INVALID")
    if "copy_text" in actions:
        copy = button["copy_text"]
        text = copy.get("text") if isinstance(copy, dict) else None
        if not isinstance(text, str) or not 1 <= len(text) <= COPY_TEXT_LIMIT:
            raise BadRequest("BUTTON_COPY_TEXT_INVALID")


def parsed_length(text: str, parse_mode: str | None) -> int:
    """The text's length once entities are parsed (raises for HTML Telegram cannot parse)."""
    if (parse_mode or "").lower() != "html":
        return len(text)
    for match in _TAG.finditer(text):
        if match.group(1).lower() not in HTML_TAGS:
            raise BadRequest(
                f'can\'t parse entities: Unsupported start tag "{match.group(1)}" at byte offset '
                f"{len(text[: match.start()].encode())}"
            )
    plain = _TAG.sub("", text)
    for i, char in enumerate(plain):
        if char == "<":
            raise BadRequest(
                f"can't parse entities: Unexpected end of name token at byte offset {len(plain[:i].encode())}"
            )
        if char == "&" and not _ENTITY.match(plain, i):
            raise BadRequest(
                f"can't parse entities: Character entity expected at byte offset {len(plain[:i].encode())}"
            )
    return len(_ENTITY.sub("x", plain))


def check_text(params: dict[str, Any], *, edit: bool = False) -> None:
    text = str(params.get("text") or "")
    length = parsed_length(text, params.get("parse_mode"))
    if not text.strip():
        raise BadRequest("message text is empty")
    if length > TEXT_LIMIT:
        raise BadRequest("MESSAGE_TOO_LONG" if edit else "message is too long")


def check_caption(params: dict[str, Any]) -> None:
    caption = params.get("caption")
    if caption is None:
        return
    if parsed_length(str(caption), params.get("parse_mode")) > CAPTION_LIMIT:
        raise BadRequest("message caption is too long")


def check_album(media: Any) -> list[dict[str, Any]]:
    if not media:
        raise BadRequest("there are no messages to send")
    if not isinstance(media, list) or not all(isinstance(m, dict) for m in media):
        raise BadRequest("can't parse InputMedia: media not found")
    if len(media) > ALBUM_MAX:
        raise BadRequest("too many messages to send as an album")
    if len(media) < 2:
        raise BadRequest("an album takes 2-10 media (the Bot API's documented limit)")
    kinds = {m.get("type") for m in media}
    if "document" in kinds and kinds != {"document"}:
        raise BadRequest("document can't be mixed with other media types")
    for item in media:
        check_caption(item)
    return media


def check_inline_answer(params: dict[str, Any], known_file_ids: Iterable[str]) -> None:
    results = params.get("results") or []
    if not isinstance(results, list):
        raise BadRequest("can't parse inline query results JSON object")
    if len(results) > INLINE_RESULTS_MAX:
        raise BadRequest("RESULTS_TOO_MUCH")
    ids: set[str] = set()
    known = set(known_file_ids)
    for result in results:
        rid = str(result.get("id") or "")
        if not 1 <= len(rid.encode()) <= 64:
            raise BadRequest("RESULT_ID_INVALID")
        if rid in ids:
            raise BadRequest("RESULT_ID_DUPLICATE")
        ids.add(rid)
        kind = result.get("type")
        if kind == "photo":
            file_id = result.get("photo_file_id")
            if file_id is not None and file_id not in known:
                raise BadRequest("wrong file identifier/HTTP URL specified")
            if file_id is None and button_url_refused(str(result.get("photo_url") or "")):
                raise BadRequest("PHOTO_INVALID")
        elif kind == "article":
            if not str(result.get("title") or "").strip():
                raise BadRequest("RESULT_TITLE_EMPTY")
            content = result.get("input_message_content") or {}
            check_text({"text": content.get("message_text"), "parse_mode": content.get("parse_mode")})
        else:
            raise BadRequest(f'unsupported inline query result type "{kind}"')
        check_caption(result)
        check_markup(result.get("reply_markup"))
    button = params.get("button")
    if button:
        if not str(button.get("text") or "").strip():
            raise BadRequest("BUTTON_TEXT_INVALID")
        start = button.get("start_parameter")
        if start is not None and not _START_PARAM.match(str(start)):
            raise BadRequest("START_PARAM_INVALID")
