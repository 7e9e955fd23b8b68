"""The real app (``app.main``) as a process the fault tests can kill at a named point.

    P2P_CRASH_AT=<point>[:<n>] python -m tests.faults.proc --role bot

At the ``n``-th time (default 1) the process passes ``point`` it prints ``CRASH <point>`` and
kills itself with SIGKILL: no clean-up, no commit, no goodbye, as a power cut or the OOM killer.
With ``P2P_CRASH_ARM=<file>`` passes count only once that file exists (the test arms it when
it wants the kill: "at the next picture from now").
Points (each a real step of the bot):

- ``before_send_photo``: a result claimed, the picture about to go out (mid-delivery);
- ``after_status_reply``: the "queued" status sent, the job not yet on the queue;
- ``after_confirm``: the picture sent and its delivery confirmed, the status not yet removed;
- ``before_credit``: a Stars payment's message handled, its credit not yet written;
- ``after_credit``: the credit written, the buyer not yet thanked (the update maybe unconfirmed).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import Any

_hits: dict[str, int] = {}


def _crash_point(name: str) -> None:
    wanted = os.environ.get("P2P_CRASH_AT", "")
    point, _, count = wanted.partition(":")
    if point != name:
        return
    arm = os.environ.get("P2P_CRASH_ARM")
    if arm and not os.path.exists(arm):
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(count or 1):
        print(f"CRASH {name}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def _before(cls: Any, method: str, point: str) -> None:
    original = getattr(cls, method)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        _crash_point(point)
        return await original(*args, **kwargs)

    setattr(cls, method, wrapper)


def _after(cls: Any, method: str, point: str) -> None:
    original = getattr(cls, method)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        _crash_point(point)
        return result

    setattr(cls, method, wrapper)


def install() -> None:
    if not os.environ.get("P2P_CRASH_AT"):
        return
    from adapters.sqlite.delivery_log import SqliteDeliveryLog
    from adapters.telegram.sender import Sender
    from domain.use_cases.admit import AdmitJobs
    from domain.use_cases.credits import SellCredits

    _before(Sender, "send_photo", "before_send_photo")
    _after(AdmitJobs, "_open_status", "after_status_reply")
    _after(SqliteDeliveryLog, "confirm", "after_confirm")
    _before(SellCredits, "credit", "before_credit")
    _after(SellCredits, "credit", "after_credit")
    from adapters.postgres.delivery_log import PostgresDeliveryLog

    _after(PostgresDeliveryLog, "confirm", "after_confirm")


if __name__ == "__main__":
    install()
    import app

    sys.exit(app.main(sys.argv[1:]))
