"""Prompt2Pic entry point.

python app.py [--role bot|worker|all]        run the service (default: all, in one process)
python app.py generate "prompt" -o out.png   make one picture in-process and exit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

if TYPE_CHECKING:
    from config.bootstrap import Components
    from config.settings import Settings

ROLES = ("bot", "worker", "all")

log = logging.getLogger("prompt2pic")


async def _start(component: Any, started: list[Any]) -> Any:
    await component.start()
    started.append(component)
    return component


async def _start_when_reachable(component: Any, started: list[Any], stop: asyncio.Event) -> bool:
    """Start a component that talks to a service (the broker, the object store), retrying with
    backoff while that service is unreachable; readiness stays false meanwhile. False when the
    process was asked to stop first."""

    def retrying(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.upcoming_sleep
        log.warning("%s cannot start yet (%s); retrying in %.0f s", type(component).__name__, type(exc).__name__, delay)

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


async def _work(parts: Components, stop: asyncio.Event) -> None:
    """The worker: first its calibration (the policy then starts from this worker's own speed;
    jobs wait on the queue meanwhile, and the bot of role all is up already), then its jobs."""
    if parts.calibrate is not None and not stop.is_set():
        try:
            await parts.calibrate()
        except Exception:
            log.exception("the calibration failed; the quality policy starts from SECONDS_PER_IMAGE")
    await parts.worker.run(stop)


async def serve(parts: Components, stop: asyncio.Event | None = None) -> int:
    """Run the parts of ``parts.role`` until SIGINT/SIGTERM, then stop without losing accepted
    work: intake stops first, the worker finishes the batch in hand, results still owed are
    delivered (or stay on the queue), and only then do the adapters close."""
    from domain.errors import ModelNotFound

    role, settings = parts.role, parts.settings
    loop = asyncio.get_running_loop()
    stop_intake = stop or asyncio.Event()
    if stop is None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_intake.set)

    started: list[Any] = []
    workers: list[asyncio.Task[Any]] = []
    telegram = None
    try:
        await _start(parts.metrics, started)
        await _start(parts.tracer, started)
        http = parts.http
        if role in ("bot", "all"):
            if settings.telegram_bot_token.get_secret_value():
                telegram = parts.telegram
            elif role == "bot":
                log.error("TELEGRAM_BOT_TOKEN is not set: the bot role cannot start")
                return 2
            else:
                log.warning(
                    "TELEGRAM_BOT_TOKEN is not set: running without the Telegram front "
                    "(the worker and the HTTP endpoint run; see README)"
                )
        # Liveness first: a model that loads for minutes must not look like a dead container.
        await _start(http, started)
        for component in (parts.queue, parts.storage):
            if not await _start_when_reachable(component, started, stop_intake):
                return 0
        if role in ("worker", "all"):
            try:
                await _start(parts.prompt_translator, started)
                await _start(parts.generator, started)
            except ModelNotFound as exc:
                log.error("%s", exc.params.get("message", exc))
                return 2
            await _start(parts.image_check, started)  # the detector loads on its thread
            workers.append(asyncio.create_task(_work(parts, stop_intake), name="worker"))
        if telegram is not None:
            await telegram.start()
        parts.started = True
        log.info("prompt2pic running as %s on port %d", role, http.port)

        await stop_intake.wait()
        log.info("stopping: no new prompts are accepted")
        if telegram is not None:
            await telegram.stop_intake()
        if workers:
            _, pending = await asyncio.wait(workers, timeout=settings.shutdown_grace_s)
            for task in pending:
                log.warning("in-flight work did not finish in time; it goes back to the queue")
                task.cancel()
        if telegram is not None:
            if role == "all":
                await asyncio.sleep(1.0)  # one more poll, for results the worker just published
            await telegram.stop()
            telegram = None
        return 0
    finally:
        for task in workers:
            task.cancel()
        if telegram is not None:
            await telegram.stop()
        for component in reversed(started):
            try:
                await component.stop()
            except Exception:
                log.exception("stopping %s failed", type(component).__name__)
        log.info("prompt2pic stopped")


async def generate_once(settings: Settings, args: argparse.Namespace) -> int:
    """One picture, in-process, through the same use cases as the service."""
    from config.bootstrap import Components
    from domain.errors import InvalidRequest, ModelNotFound
    from domain.models import JobStatus, Quality

    with tempfile.TemporaryDirectory(prefix="p2p-") as tmp:
        parts = Components.for_one_picture(settings, Path(tmp))
        started: list[Any] = []
        try:
            queue = await _start(parts.queue, started)
            storage = await _start(parts.storage, started)
            try:
                await _start(parts.prompt_translator, started)
                await _start(parts.generator, started)
            except ModelNotFound as exc:
                print(f"error: {exc.params.get('message', exc)}", file=sys.stderr)
                return 2
            await _start(parts.image_check, started)
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
            [delivery] = await queue.receive_events(1, 5.0) or [None]
            while delivery is not None and delivery.message.kind != "result":
                await delivery.ack()
                [delivery] = await queue.receive_events(1, 5.0) or [None]
            if delivery is None or delivery.message.status != JobStatus.DONE:
                code = delivery.message.error_code if delivery else "no result"
                print(f"error: generation failed ({code})", file=sys.stderr)
                return 1
            result = delivery.message
            out = Path(args.output)
            png = await storage.get(result.image_key)
            await asyncio.to_thread(out.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(out.write_bytes, png)
            print(
                f"wrote {out} ({result.width}x{result.height}, seed {result.seed}, "
                f"profile {result.profile}, {result.timings.generation_s:.2f}s) job {job.job_id}"
            )
            seen = result.understood
            if seen is not None and seen.translation != "none":
                print(f"translation {seen.translation}: the model read {seen.prompt!r}")
            if seen is not None and seen.cut:
                print(f"not read (past {seen.token_limit} tokens): {seen.cut}")
            return 0
        finally:
            for component in reversed(started):
                await component.stop()


def parse_args(argv: list[str]) -> argparse.Namespace:
    if argv[:1] == ["generate"]:
        p = argparse.ArgumentParser(prog="app.py generate", description="Make one picture and exit.")
        p.add_argument("prompt")
        p.add_argument("-o", "--output", required=True, help="PNG file to write")
        p.add_argument("--negative", help="negative prompt")
        p.add_argument("--seed", type=int)
        p.add_argument("--width", type=int)
        p.add_argument("--height", type=int)
        p.add_argument("--quality", default="auto", choices=["auto", "fast", "balanced", "quality"])
        p.add_argument("--generator", choices=["fake", "tiny", "wuerstchen"], help="overrides GENERATOR")
        args = p.parse_args(argv[1:])
        args.command = "generate"
        return args
    p = argparse.ArgumentParser(prog="app.py", description="Prompt2Pic: text to image for Telegram.")
    p.add_argument("--role", choices=ROLES, default="all")
    args = p.parse_args(argv)
    args.command = "serve"
    return args


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
    return asyncio.run(serve(Components(settings, role=args.role)))


if __name__ == "__main__":
    sys.exit(main())
