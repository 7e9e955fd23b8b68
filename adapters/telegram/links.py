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
from enum import StrEnum
from typing import Any
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


def public_link_base(settings: Any) -> tuple[str, str]:
    """The setting that decides what picture links look like, and its value."""
    backend = str(getattr(getattr(settings, "storage_backend", ""), "value", getattr(settings, "storage_backend", "")))
    if backend == "s3":
        public = getattr(settings, "s3_public_endpoint_url", "") or ""
        if public:
            return "S3_PUBLIC_ENDPOINT_URL", public
        return "S3_PUBLIC_ENDPOINT_URL", getattr(settings, "s3_endpoint_url", "") or ""
    return "PUBLIC_BASE_URL", getattr(settings, "public_base_url", "") or ""


def link_mode(settings: Any) -> LinkUse:
    """What picture links will be: buttons, text in captions, or none."""
    name, base = public_link_base(settings)
    if not base:
        return LinkUse.BUTTON if name == "S3_PUBLIC_ENDPOINT_URL" else LinkUse.NONE
    return link_use(base)


def link_warning(settings: Any) -> str | None:
    """A warning for the log when picture links will not be buttons, with the setting to change;
    None when they will."""
    name, base = public_link_base(settings)
    if not base:
        if name == "PUBLIC_BASE_URL":
            return (
                "PUBLIC_BASE_URL is empty: pictures get no full-size link (the 'Original PNG' button "
                "sends the file instead); set it to this app's public https URL to add links"
            )
        return None  # AWS S3 itself: links on amazonaws.com, which Telegram takes
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
