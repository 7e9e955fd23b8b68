"""The link policy: which picture links become buttons, which go in as text, which are left out.

Telegram refuses an inline URL button unless its URL is http(s) (or tg://) on a host name with a
dot that is not ``localhost``, and it refuses the whole message with it (``BUTTON_URL_INVALID``).
So:

- ``BUTTON``: http(s) on a public host name: a "🔗 Open full size" button;
- ``TEXT``: http(s) on a public IP address: a phone can open it, Telegram will not make it a
  button, so it goes into the caption as text;
- ``NONE``: anything a phone cannot open (localhost, a loopback, private or link-local address, a
  name without a dot such as ``minio``, ``file://``): left out; the "📄 Original PNG" button
  sends the picture itself instead.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit


class LinkUse(StrEnum):
    BUTTON = "button"
    TEXT = "text"
    NONE = "none"


def link_use(url: str | None) -> LinkUse:
    if not url:
        return LinkUse.NONE
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return LinkUse.NONE
    if parts.scheme.lower() not in ("http", "https") or not host:
        return LinkUse.NONE
    if host == "localhost" or host.endswith(".localhost"):
        return LinkUse.NONE
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return LinkUse.BUTTON if "." in host.strip(".") else LinkUse.NONE
    return LinkUse.TEXT if address.is_global else LinkUse.NONE


def button_url(url: str | None) -> str | None:
    """``url`` when Telegram takes it as a button, else None."""
    return url if link_use(url) == LinkUse.BUTTON else None


@dataclass(frozen=True)
class LinkPolicy:
    """What picture links will be, for the storage this process runs: built by the composition
    root (config/telegram_wiring.py) from the settings, which this package never reads.
    ``setting`` names the setting that decides the links and ``base`` is its value; ``unset`` is
    what links are when it is empty (S3 on AWS: amazonaws.com, which Telegram takes; a local
    folder: none), with ``unset_warning`` to log then."""

    setting: str
    base: str
    unset: LinkUse = LinkUse.NONE
    unset_warning: str | None = None

    def mode(self) -> LinkUse:
        """What picture links will be: buttons, text in captions, or none."""
        return link_use(self.base) if self.base else self.unset

    def warning(self) -> str | None:
        """A warning for the log when picture links will not be buttons, with the setting to
        change; None when they will."""
        name, base = self.setting, self.base
        if not base:
            return self.unset_warning
        use = link_use(base)
        if use == LinkUse.BUTTON:
            return None
        if use == LinkUse.TEXT:
            return (
                f"{name}={base} is an IP address: Telegram refuses link buttons on it, so links go "
                f"into captions as text; set {name} to a public host name (https) for buttons"
            )
        return (
            f"{name}={base} is not reachable from users' phones (localhost, a private address or a "
            f"name without a dot): pictures are sent without links; set {name} to a public host "
            "name (https) for full-size links"
        )
