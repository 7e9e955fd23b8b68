"""Prompt2Pic entry point.

python app.py [--role bot|worker|all]        run the service (default: all, in one process)
python app.py generate "prompt" -o out.png   make one picture in-process and exit
python app.py --help, --role ROLE --help, generate --help: what each does
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

if TYPE_CHECKING:
    from adapters.telegram.runtime import TelegramRuntime
    from config.bootstrap import Components
    from config.settings import Settings
    from domain.models import Result
    from domain.ports import JobQueue

ROLES = ("bot", "worker", "all")

log = logging.getLogger("prompt2pic")


async def _start(component: Any, started: list[Any]) -> Any:
    await component.start()
    started.append(component)
    return component


async def _start_when_reachable(component: Any, started: list[Any], stop: asyncio.Event) -> bool:
    """Start a component that talks to a service (the broker, the object store), retrying with
    backoff while that service is unreachable; readiness stays false meanwhile. False when the
    process was asked to stop first. The log names the component by its ``name`` if it has one
    (``Components.runner``: the part's own class), else by its class."""
    name = getattr(component, "name", None) or type(component).__name__

    def retrying(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.upcoming_sleep
        log.warning("%s cannot start yet (%s); retrying in %.0f s", name, type(exc).__name__, delay)

    async def pause(seconds: float) -> None:  # cut short when the process is asked to stop
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    tries = AsyncRetrying(
        wait=wait_exponential(multiplier=1.0, max=30.0),  # 1, 2, 4, 8, 16, 30 s, ...
        retry=retry_if_exception_type(Exception),
        before_sleep=retrying,
        sleep=pause,
        reraise=True,
    )
    async for attempt in tries:
        if stop.is_set():  # before every try, the first one too
            return False
        with attempt:
            await _start(component, started)
    return True


async def stop_workers(workers: list[asyncio.Task[Any]], grace_s: float) -> None:
    """Give the workers (already told to stop) ``grace_s`` to finish the batch in hand, then
    cut them short; either way they hand their jobs back uncounted (``ProcessJobs.run``). The
    cut ones are waited for, so that the hand-back is done before the queue closes."""
    _, pending = await asyncio.wait(workers, timeout=grace_s)
    for task in pending:
        log.warning("in-flight work did not finish in %.0f s; it goes back to the queue", grace_s)
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5.0)


async def _work(parts: Components, stop: asyncio.Event) -> None:
    """The worker: first its calibration (the policy then starts from this worker's own speed;
    jobs wait on the queue meanwhile, and the bot of role all is up already), then its jobs."""
    if parts.calibrate is not None and not stop.is_set():
        try:
            await parts.calibrate()
        except Exception:
            log.exception("the calibration failed; the quality policy starts from SECONDS_PER_IMAGE")
    await parts.worker.run(stop)


def _vital(http: Any, name: str, loop: Any, stop: asyncio.Event) -> asyncio.Task[Any]:
    """A loop that must run until ``stop``: one that ends before makes ``/healthz`` fail (a
    container restart), and its failure is logged as it happens."""
    task = asyncio.create_task(loop, name=name)

    def alive() -> bool | str:
        return True if stop.is_set() or not task.done() else f"the {name} loop ended"

    def report(done: asyncio.Task[Any]) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.error("the %s loop failed", name, exc_info=done.exception())

    task.add_done_callback(report)
    http.liveness[name] = alive
    return task


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


class _Service:
    """One run of ``serve``, step by step: ``start`` the parts of the role, ``drain`` once the
    process is asked to stop, and ``close`` whatever is still open, whatever happened."""

    def __init__(self, parts: Components, stop_intake: asyncio.Event) -> None:
        self.parts = parts
        self.stop_intake = stop_intake
        self.workers: list[asyncio.Task[Any]] = []
        self.telegram: TelegramRuntime | None = None

    async def start(self) -> int | None:
        """Start every part of the role; the exit status when the process cannot run (or was
        stopped while it waited for a service), None once it runs."""
        parts, role = self.parts, self.parts.role
        await parts.start("metrics")
        await parts.start("tracer")
        if role in ("bot", "all") and not self._telegram_wanted():
            return 2
        # Liveness first: a model that loads for minutes must not look like a dead container.
        await parts.start("http")
        if not await self._reach_services():
            return 0
        # The group's backlog, measured on a clock in every process (dashboards take max()).
        self._vital("backlog", parts.watch_backlog.run(self.stop_intake))
        if role in ("worker", "all"):
            refused = await self._start_worker()
            if refused is not None:
                return refused
        if self.telegram is not None:
            parts.phase = "starting the Telegram front"
            await self.telegram.start()
            parts.http.liveness["telegram"] = self.telegram.alive
        parts.started = True
        parts.phase = ""
        log.info("prompt2pic running as %s on port %d", role, parts.http.port)
        return None

    def _telegram_wanted(self) -> bool:
        """Wire the Telegram front when there is a token (its webhook route goes on the HTTP
        endpoint, so before that starts); False: the bot role cannot run without one."""
        parts = self.parts
        if parts.settings.telegram_bot_token.get_secret_value():
            self.telegram = parts.telegram
        elif parts.role == "bot":
            log.error("TELEGRAM_BOT_TOKEN is not set: the bot role cannot start")
            return False
        else:
            log.warning(
                "TELEGRAM_BOT_TOKEN is not set: running without the Telegram front "
                "(the worker and the HTTP endpoint run; see README)"
            )
        return True

    async def _reach_services(self) -> bool:
        """The queue and the storage, each retried while its service is unreachable; False when
        the process was asked to stop first."""
        self.parts.phase = "waiting for the queue and the storage"
        for part in ("queue", "storage"):
            if not await _start_when_reachable(self.parts.runner(part), [], self.stop_intake):
                return False
        return True

    async def _start_worker(self) -> int | None:
        """Load the model (the translator with it) and the image check, then run the jobs; 2
        when the model is not there."""
        from domain.errors import ModelNotFound

        parts = self.parts
        parts.phase = "loading the model"
        try:
            async with parts.model_load():
                await parts.start("prompt_translator")
                await parts.start("generator")
        except ModelNotFound as exc:
            log.error("%s", exc.params.get("message", exc))
            return 2
        await parts.start("image_check")  # the detector loads on its thread
        self._vital("worker", _work(parts, self.stop_intake))
        return None

    def _vital(self, name: str, loop: Any) -> None:
        self.workers.append(_vital(self.parts.http, name, loop, self.stop_intake))

    async def drain(self) -> None:
        """Intake stops first, the worker finishes the batch in hand, results still owed are
        delivered (or stay on the queue). SHUTDOWN_GRACE_S covers the whole stop."""
        log.info("stopping: no new prompts are accepted")
        loop = asyncio.get_running_loop()
        grace_s = self.parts.settings.shutdown_grace_s
        grace_ends = loop.time() + grace_s
        telegram = self.telegram
        if telegram is not None:
            await telegram.stop_intake()
        if self.workers:
            await stop_workers(self.workers, grace_s)
        if telegram is not None:
            if self.parts.role == "all":
                await asyncio.sleep(1.0)  # one more poll, for results the worker just published
            await telegram.stop(max(1.0, grace_ends - loop.time()))
            self.telegram = None

    async def close(self) -> None:
        """Whatever still runs: the loops cancelled, the front stopped, then the parts, the
        last started first."""
        for task in self.workers:
            task.cancel()
        if self.telegram is not None:
            await self.telegram.stop()
        await self.parts.stop()
        log.info("prompt2pic stopped")


async def serve(parts: Components, stop: asyncio.Event | None = None) -> int:
    """Run the parts of ``parts.role`` until SIGINT/SIGTERM (or ``stop``), then stop without
    losing accepted work: intake stops first, the worker finishes the batch in hand, results
    still owed are delivered (or stay on the queue), and only then do the adapters close."""
    service = _Service(parts, stop or _stop_on_signals())
    try:
        refused = await service.start()
        if refused is not None:
            return refused
        await service.stop_intake.wait()
        await service.drain()
        return 0
    finally:
        await service.close()


async def _result_of(queue: JobQueue) -> Result | None:
    """The next result on the queue (the progress events before it acked and passed over);
    None when none comes within 5 s."""
    from domain.models import Result

    while True:
        events = await queue.receive_events(1, 5.0)
        if not events:
            return None
        if isinstance(events[0].message, Result):
            return events[0].message
        await events[0].ack()


def _say_what_was_made(result: Result, out: Path, job_id: str) -> None:
    """The one-picture command's report: the file, and whether the picture and the prompt's
    translation are the model's work."""
    print(
        f"wrote {out} ({result.width}x{result.height}, seed {result.seed}, "
        f"profile {result.profile}, {result.timings.generation_s:.2f}s) job {job_id}"
    )
    if result.generator_kind == "placeholder":
        print("note: a placeholder, not a generated image: the model is not installed (see the warning above)")
    elif result.generator_kind == "tiny":
        print("note: random test weights: the picture is noise, not a generated image")
    seen = result.understood
    if seen is not None and seen.translation != "none":
        gibberish = " (random test weights: gibberish)" if result.generator_kind == "tiny" else ""
        print(f"translation {seen.translation}{gibberish}: the model read {seen.prompt!r}")
    if seen is not None and seen.cut:
        print(f"not read (past {seen.token_limit} tokens): {seen.cut}")


async def generate_once(settings: Settings, args: argparse.Namespace) -> int:
    """One picture, in-process, through the same use cases as the service."""
    from config.bootstrap import Components
    from domain.errors import InvalidRequest, ModelNotFound
    from domain.models import JobStatus, Quality

    with tempfile.TemporaryDirectory(prefix="p2p-") as tmp:
        parts = Components.for_one_picture(settings, Path(tmp))
        try:
            await parts.start("queue")
            await parts.start("storage")
            queue, storage = parts.queue, parts.storage
            try:
                await parts.start("prompt_translator")
                await parts.start("generator")
            except ModelNotFound as exc:
                print(f"error: {exc.params.get('message', exc)}", file=sys.stderr)
                return 2
            await parts.start("image_check")
            try:
                job = await parts.submit(
                    user_id=0,
                    chat_id=0,
                    prompt=args.prompt,
                    negative_prompt=args.negative or "",
                    width=args.width,
                    height=args.height,
                    seed=args.seed,
                    quality=Quality(args.quality),
                )
            except InvalidRequest as exc:
                print(f"error: {parts.translator('en', 'error-' + exc.code, **exc.params)}", file=sys.stderr)
                return 2
            await parts.worker.process(await queue.receive_jobs(1, 5.0))
            result = await _result_of(queue)
            if result is None or result.status != JobStatus.DONE:
                code = result.error_code if result else "no result"
                print(f"error: generation failed ({code})", file=sys.stderr)
                return 1
            assert result.image_key is not None  # done: the picture was stored
            out = Path(args.output)
            png = await storage.get(result.image_key)
            await asyncio.to_thread(out.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(out.write_bytes, png)
            _say_what_was_made(result, out, job.job_id)
            return 0
        finally:
            await parts.stop()


DESCRIPTION = """\
Prompt2Pic: text to image for Telegram. A prompt sent to the bot goes on a queue; a worker draws
the picture (the Würstchen model when it is installed, else a placeholder that says so) and the
bot sends it back. Settings come from environment variables or a .env file (README: Settings).
Every role serves /healthz, /readyz and /metrics on HTTP_PORT (default 8080)."""

ROLE_TEXTS = {
    "bot": "the Telegram front: validates prompts, queues jobs, edits live statuses, delivers results. "
    "Needs TELEGRAM_BOT_TOKEN, and QUEUE_BACKEND=kafka to reach workers in other processes; no torch.",
    "worker": "takes jobs from the queue in fair batches, draws them (GENERATOR: auto picks the Würstchen "
    "model when the worker extra and its weights are there), stores them (STORAGE_BACKEND) and publishes "
    "the results. Needs QUEUE_BACKEND=kafka to reach a bot in another process.",
    "all": "the bot and a worker in one process, on any queue (the in-memory one by default). Without "
    "TELEGRAM_BOT_TOKEN only the worker and the HTTP endpoint run.",
}

EPILOG = (
    "roles (--role):\n"
    + "".join(
        textwrap.fill(text, 100, initial_indent=f"  {role:<8}", subsequent_indent=" " * 10) + "\n"
        for role, text in ROLE_TEXTS.items()
    )
    + "\nexamples:\n"
    "  python app.py                                   the bot and a worker in one process\n"
    "  python app.py --role worker                     a worker alone (QUEUE_BACKEND=kafka)\n"
    '  python app.py generate "a sunset" -o sunset.png one picture, then exit\n'
    "  python app.py --role bot --help                 one role in detail"
)


def _role_in(argv: list[str]) -> str | None:
    """The role named on the command line (``--role bot`` or ``--role=bot``), if any."""
    for i, arg in enumerate(argv):
        if arg == "--role" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--role="):
            return arg.split("=", 1)[1]
    return None


def _generate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "generate",
        help="make one picture in this process and exit",
        description="Make one picture through the same use cases as the service, on an in-process queue "
        "and a throwaway folder, write it as a PNG and exit (2: bad input or no model).",
    )
    p.add_argument("prompt")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--negative", help="negative prompt")
    p.add_argument("--seed", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--quality", default="auto", choices=["auto", "fast", "balanced", "quality"])
    p.add_argument(
        "--generator",
        choices=["auto", "fake", "tiny", "wuerstchen"],
        help="overrides GENERATOR (tiny: the real pipeline on random test weights; needs the worker extra)",
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``app.py [--role ROLE]`` or ``app.py generate ...``; ``--role ROLE --help`` describes that role."""
    role = _role_in(argv)
    if role in ROLE_TEXTS and ("-h" in argv or "--help" in argv) and "generate" not in argv:
        p = argparse.ArgumentParser(
            prog=f"app.py --role {role}",
            description=f"Run Prompt2Pic as {role}: {ROLE_TEXTS[role]}",
            epilog="Stop with SIGINT or SIGTERM: intake stops first and accepted work is not lost.",
        )
        p.add_argument("--role", choices=ROLES, default="all", help=f"the role ({role} here)")
        p.parse_args(argv)  # prints this role's help and exits
    p = argparse.ArgumentParser(
        prog="app.py", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--role", choices=ROLES, default="all", help="what this process runs (default: all; see below)")
    _generate_parser(p.add_subparsers(dest="command", metavar="{generate}", title="subcommands"))
    args = p.parse_args(argv)
    if args.command is None:
        args.command = "serve"
    return args


def lonely_role(role: str, settings: Settings) -> str | None:
    """Why ``role`` cannot work in a process of its own with these settings (None: it can). The
    in-memory queue reaches only its own process: a bot alone would queue prompts that nothing
    draws, a worker alone would wait for jobs that never come."""
    from config.settings import QueueBackend

    if role in ("bot", "worker") and settings.queue_backend == QueueBackend.MEMORY:
        other = "worker" if role == "bot" else "bot"
        return (
            f"--role {role} cannot work on the in-memory queue (QUEUE_BACKEND=memory), which reaches only "
            f"its own process: no {other} would ever see its messages. Run --role all (bot and worker in "
            f"one process), or set QUEUE_BACKEND=kafka and KAFKA_BOOTSTRAP_SERVERS for separate processes."
        )
    return None


def secrets_of(settings: Any) -> list[str]:
    """Every secret setting's value, and the password inside a secret URL (``DATABASE_URL``)."""
    from urllib.parse import urlsplit

    from pydantic import SecretStr

    out = [
        value.get_secret_value()
        for value in (getattr(settings, name) for name in type(settings).model_fields)
        if isinstance(value, SecretStr)
    ]
    for value in list(out):
        if "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                continue
            if password:
                out.append(password)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from config.bootstrap import Components
    from config.logging import setup_logging
    from config.settings import Settings

    overrides = {"generator": args.generator} if getattr(args, "generator", None) else {}
    settings = Settings(**overrides)
    setup_logging(settings.log_level, secrets_of(settings), settings.log_format)
    if args.command == "generate":
        return asyncio.run(generate_once(settings, args))
    refusal = lonely_role(args.role, settings)
    if refusal:
        log.error("%s", refusal)
        return 2
    return asyncio.run(serve(Components(settings, role=args.role)))


if __name__ == "__main__":
    sys.exit(main())
