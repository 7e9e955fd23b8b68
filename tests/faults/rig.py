"""A whole Prompt2Pic deployment on this machine, for fault tests and the fault benchmark: bot and
worker processes of the real app (``tests.faults.proc``, which can kill itself at a named point),
the real Kafka broker, moto's S3 server over HTTP (the bot reaches it through a proxy that can
refuse connections), and the strict fake Bot API server in this process. Users send prompts; the
rig tells what each user saw: pictures, honest failures, statuses left in the chat.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.telegram import FakeBotAPI
from tests.faults.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parents[2]
STATUS_PREFIXES = ("⏳", "🎨")  # what a live status message starts with (queued, drawing)
FAILURE_MARK = "Sorry, I could not make that picture"


@dataclass
class Proc:
    """One app process; its output is kept in ``log`` (and the rig's log folder)."""

    name: str
    role: str
    env: dict[str, str]
    logfile: Path
    process: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    async def start(self, crash_at: str | None = None) -> Proc:
        env = dict(self.env)
        if crash_at:
            env["P2P_CRASH_AT"] = crash_at
        else:
            env.pop("P2P_CRASH_AT", None)
        self.lines = []
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.faults.proc",
            "--role",
            self.role,
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read(), name=f"log-{self.name}")
        return self

    async def _read(self) -> None:
        assert self.process and self.process.stdout
        with self.logfile.open("a") as out:
            out.write(f"--- start {time.strftime('%H:%M:%S')}\n")
            while line := await self.process.stdout.readline():
                text = line.decode(errors="replace").rstrip()
                self.lines.append(text)
                out.write(text + "\n")
                out.flush()

    def saw(self, fragment: str) -> bool:
        return any(fragment in line for line in self.lines)

    async def wait_for_line(self, fragment: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.saw(fragment):
            if self.process is not None and self.process.returncode is not None:
                raise AssertionError(f"{self.name} ended ({self.process.returncode}) before {fragment!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {fragment!r} within {timeout}s; log: {self.logfile}")
            await asyncio.sleep(0.05)

    async def wait_ready(self, timeout: float = 60) -> None:
        await self.wait_for_line(f"prompt2pic running as {self.role}", timeout)

    async def wait_crashed(self, timeout: float = 60) -> None:
        assert self.process is not None
        await self.wait_for_line("CRASH ", timeout)
        code = await asyncio.wait_for(self.process.wait(), 10)
        assert code == -signal.SIGKILL, f"{self.name} exited {code}, not killed"
        if self._reader:
            await asyncio.wait({self._reader}, timeout=5)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader:
            await asyncio.wait({self._reader}, timeout=5)

    async def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, as an orchestrator stops a container; the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"{self.name} did not stop within {timeout}s after SIGTERM") from None
        if self._reader:
            await asyncio.wait({self._reader}, timeout=5)
        return code


class Rig:
    def __init__(self, *, bootstrap: str, s3_url: str, telegram: FakeBotAPI, folder: Path, **settings: Any) -> None:
        self.bootstrap = bootstrap
        self.s3_url = s3_url
        self.tg = telegram
        self.folder = folder
        suffix = uuid.uuid4().hex[:8]
        host, port = s3_url.removeprefix("http://").split(":")
        self.s3_proxy = TcpProxy(host, int(port))
        self.base: dict[str, str] = {
            "QUEUE_BACKEND": "kafka",
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_REQUESTS_TOPIC": f"faults-{suffix}.requests",
            "KAFKA_RESULTS_TOPIC": f"faults-{suffix}.results",
            "KAFKA_DEAD_LETTER_TOPIC": f"faults-{suffix}.dead-letters",
            "KAFKA_WORKER_GROUP": f"faults-{suffix}.workers",
            "KAFKA_BOT_GROUP": f"faults-{suffix}.bots",
            "KAFKA_PARTITIONS": "4",
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": f"faults-{suffix}",
            "S3_REGION": "us-east-1",
            "S3_ACCESS_KEY_ID": "testing",
            "S3_SECRET_ACCESS_KEY": "testing",
            "S3_CONNECT_TIMEOUT_S": "1",
            "S3_READ_TIMEOUT_S": "3",
            "S3_MAX_ATTEMPTS": "1",
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_URL": telegram.base_url,
            "GENERATOR": "fake",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": "0",
            "DEFAULT_WIDTH": "256",
            "DEFAULT_HEIGHT": "256",
            "MIN_SIDE": "256",
            "MAX_JOBS_IN_FLIGHT_PER_USER": "0",
            "USER_RATE_PER_MINUTE": "0",
            "STATUS_EDIT_INTERVAL_S": "0.5",
            "SEND_BACKOFF_S": "0.2",
            "METRICS_ENABLED": "false",
            "SHUTDOWN_GRACE_S": "20",
            "MEMORY_QUEUE_FILE": str(folder / "unused-queue.json"),
            "LOCAL_STORAGE_DIR": str(folder / "unused-images"),
            "PYTHONUNBUFFERED": "1",
            **{k.upper(): str(v) for k, v in settings.items()},
        }
        self.procs: list[Proc] = []
        self.prompts: list[tuple[int, str]] = []
        self.sent_at: dict[tuple[int, str], float] = {}

    async def start(self) -> Rig:
        self.folder.mkdir(parents=True, exist_ok=True)
        await self.s3_proxy.start()
        return self

    def env_for(self, role: str, name: str, **extra: Any) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("P2P_", "KAFKA_", "S3_", "TELEGRAM_"))}
        env.update(self.base)
        env["WORKER_ID"] = name
        env["S3_ENDPOINT_URL"] = self.s3_proxy.url if role == "bot" else self.s3_url
        env["S3_PUBLIC_ENDPOINT_URL"] = self.s3_url
        env["SQLITE_PATH"] = str(self.folder / "bot.sqlite3")  # the bot's volume
        env.update({k.upper(): str(v) for k, v in extra.items()})
        return env

    def proc(self, role: str, name: str, **extra: Any) -> Proc:
        proc = Proc(name, role, self.env_for(role, name, **extra), self.folder / f"{name}.log")
        self.procs.append(proc)
        return proc

    async def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                if proc.process is not None and proc.process.returncode is None:
                    proc.process.send_signal(signal.SIGTERM)
        for proc in self.procs:
            with contextlib.suppress(Exception):
                if proc.process is not None:
                    try:
                        await asyncio.wait_for(proc.process.wait(), 30)
                    except TimeoutError:
                        await proc.kill()
        await self.s3_proxy.stop()

    # --- users -------------------------------------------------------------------------------
    def send(self, user: int, prompt: str) -> None:
        self.prompts.append((user, prompt))
        self.sent_at[(user, prompt)] = time.monotonic()
        self.tg.send_text(user, prompt)

    def answered_at(self) -> dict[tuple[int, str], float]:
        """When each prompt got its (first) picture or failure."""
        out: dict[tuple[int, str], float] = {}
        by_chat: dict[int, list[str]] = collections.defaultdict(list)
        for user, prompt in self.prompts:
            by_chat[user].append(prompt)
        for call in self.tg.calls:
            chat_id = call.chat_id
            if not call.ok or chat_id is None or chat_id not in by_chat:
                continue
            for prompt in by_chat[chat_id]:
                key = (chat_id, prompt)
                if key in out:
                    continue
                picture = call.method in ("sendPhoto", "sendDocument") and prompt in call.text.split("\n")[:2]
                failure = (
                    call.method in ("sendMessage", "editMessageText")
                    and call.text.startswith(FAILURE_MARK)
                    and prompt in call.text
                )
                if picture or failure:
                    out[key] = call.at
        return out

    def outcomes(self) -> dict[tuple[int, str], list[str]]:
        """What each prompt got: 'picture' for each picture, 'failure' for each honest failure."""
        got: dict[tuple[int, str], list[str]] = collections.defaultdict(list)
        for call in self.tg.calls:
            if not call.ok or call.chat_id is None:
                continue
            for user, prompt in self.prompts:
                if call.chat_id != user:
                    continue
                # (the prompt is the caption's first line, or its second under the "sensitive"
                # notice of a picture the image check flagged)
                if call.method in ("sendPhoto", "sendDocument") and prompt in call.text.split("\n")[:2]:
                    got[(user, prompt)].append("picture")
                elif (
                    call.method in ("sendMessage", "editMessageText")
                    and call.text.startswith(FAILURE_MARK)
                    and prompt in call.text
                ):
                    got[(user, prompt)].append("failure")
        return got

    def pictures(self) -> int:
        return sum(v.count("picture") for v in self.outcomes().values())

    def left_status_messages(self) -> list[tuple[int, int, str]]:
        """Live-status messages still in the users' chats (each should be gone or final): chat,
        message id, text."""
        users = {user for user, _ in self.prompts}
        return [
            (user, m["message_id"], m.get("text", ""))
            for user in users
            for m in self.tg.visible(user)
            if m.get("text", "").startswith(STATUS_PREFIXES)
        ]

    def left_statuses(self) -> list[str]:
        return [text for _, _, text in self.left_status_messages()]

    def dump_left_chats(self) -> None:
        """The Bot API calls to each chat with a status left, into the logs folder (what a
        failure's reader needs to tell which call left it)."""
        users = {user for user, _ in self.prompts}
        chats = sorted(
            {user for user in users for m in self.tg.visible(user) if m.get("text", "").startswith(STATUS_PREFIXES)}
        )
        with (self.folder / "left-chats.txt").open("w") as out:
            for chat in chats:
                left = [m for m in self.tg.visible(chat) if m.get("text", "").startswith(STATUS_PREFIXES)]
                out.write(f"=== chat {chat}: left {[(m['message_id'], m['text'][:60]) for m in left]}\n")
                for c in self.tg.calls:
                    if c.chat_id == chat:
                        params = {k: v for k, v in c.params.items() if k not in ("reply_markup", "photo", "document")}
                        out.write(f"{c.at:.3f} {c.method} ok={c.ok} {str(params)[:260]}\n")

    async def wait_settled(
        self,
        timeout: float,
        excuse: Callable[[list[tuple[int, int, str]]], Awaitable[list[tuple[int, int, str]]]] | None = None,
    ) -> dict[tuple[int, str], list[str]]:
        """Until every prompt has its picture or failure and no status is left; the outcomes.
        ``excuse``: once every prompt is answered, it is handed the statuses left and returns
        those that are not excused (a test's documented limit, e.g. a killed bot's sends)."""
        deadline = time.monotonic() + timeout
        excused_at = 0.0  # (the excuse may ask a database: once a second at most)
        while True:
            got = self.outcomes()
            if all(got.get(p) for p in self.prompts):
                left = self.left_status_messages()
                if left and excuse is not None and time.monotonic() - excused_at >= 1.0:
                    excused_at = time.monotonic()
                    left = await excuse(left)
                if not left:
                    return got
            if time.monotonic() > deadline:
                self.dump_left_chats()
                missing = [p for p in self.prompts if not got.get(p)]
                left = self.left_status_messages()
                if excuse is not None:
                    left = await excuse(left)
                raise AssertionError(
                    f"not settled in {timeout}s: {len(missing)} prompt(s) without an answer {missing[:5]}; "
                    f"statuses left (not excused): {[text for *_, text in left][:5]}; logs in {self.folder}"
                )
            await asyncio.sleep(0.1)

    def assert_exactly_once(self, got: dict[tuple[int, str], list[str]]) -> None:
        wrong = {p: v for p, v in got.items() if len(v) != 1}
        missing = [p for p in self.prompts if p not in got]
        assert not wrong and not missing, f"not exactly one answer each: {wrong} missing {missing}"

    def busiest_second(self) -> int:
        # Telegram's 30 per second is about what the bot sends to chats: updates, the bot's own
        # identity and its webhook settings (each bot checks its webhook once a minute) are not.
        not_sends = ("getUpdates", "getMe", "answerCallbackQuery", "getWebhookInfo", "setWebhook", "deleteWebhook")
        sent = sorted(c.at for c in self.tg.calls if c.method not in not_sends)
        return max((sum(1 for u in sent[i:] if u - t < 1.0) for i, t in enumerate(sent)), default=0)

    def picture_times(self) -> list[float]:
        return sorted(c.at for c in self.tg.calls if c.ok and c.method in ("sendPhoto", "sendDocument"))
