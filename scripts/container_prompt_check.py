#!/usr/bin/env python3
"""Helpers of scripts/container_check.sh: the compose file's hardening as podman flags, and one prompt
carried through containers.

    container_prompt_check.py hardening SERVICE [--volume-prefix P]   # podman run flags, one a line
    container_prompt_check.py grace SERVICE                            # stop_grace_period in seconds
    container_prompt_check.py prompt --image REF --kafka HOST:PORT --s3 URL --prefix P
        [--worker-image REF --generator fake|tiny]

``hardening`` reads docker-compose.yml: ``init``, ``read_only``, ``tmpfs``, ``cap_drop``,
``security_opt`` and the named volumes of SERVICE become ``podman run`` flags (each named volume
gets a volume of this run's own, ``P-<name>``). It fails when the service lacks the hardening every
Prompt2Pic service must have (init, ``cap_drop: [ALL]``, no-new-privileges; the bot also a
read-only root with a tmpfs /tmp), so the container check cannot quietly run with less.

``prompt`` runs, on 127.0.0.1 only: the fake Bot API of the tests (tests/fakes/telegram/server.py) in this
process, and two containers on the host network with that hardening, ``--role bot`` of IMAGE and
``--role worker`` of WORKER_IMAGE (IMAGE by default) with ``GENERATOR=fake`` or ``tiny``, against the
Kafka broker and the S3 server given. With ``tiny`` (the worker-cpu image) the worker builds the tiny
random-weight Würstchen and its translator into its model cache volume (``/cache``, as in the compose
file; its root is read-only) and the check finds them there afterwards. The bot token and the S3
secret key reach the containers as Compose ``file:`` secrets do (read-only bind mounts of files only
the image's uid may read) and are read through ``*_FILE`` by the entry point. A user sends a
prompt; the check waits for the ``sendPhoto``, then checks with boto3 that the bucket holds exactly
that picture, that neither log shows a secret, and that both containers stop on SIGTERM with exit
code 0. Every step prints its time; any failure exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
USER_ID = 4242
PROMPT = "a lighthouse on a cliff at dusk"


class CheckFailed(Exception):
    pass


# --------------------------------------------------------------------------- compose file


def compose_service(name: str) -> dict[str, Any]:
    import yaml

    services = yaml.safe_load(COMPOSE.read_text())["services"]  # merge keys (<<) resolved
    if name not in services:
        raise CheckFailed(f"{COMPOSE.name} has no service {name!r}")
    return services[name]


def hardening(name: str, volume_prefix: str = "p2p-ci") -> list[str]:
    service = compose_service(name)
    flags: list[str] = []
    missing: list[str] = []
    if service.get("init") is True:
        flags.append("--init")
    else:
        missing.append("init: true")
    if service.get("read_only") is True:
        flags.append("--read-only")
    elif name == "bot":
        missing.append("read_only: true")
    tmpfs = service.get("tmpfs") or []
    for path in [tmpfs] if isinstance(tmpfs, str) else tmpfs:
        flags += ["--tmpfs", podman_tmpfs(path)]
    if service.get("read_only") is True and "/tmp" not in tmpfs:
        missing.append("tmpfs: [/tmp]")
    cap_drop = service.get("cap_drop") or []
    if "ALL" not in cap_drop:
        missing.append("cap_drop: [ALL]")
    for cap in cap_drop:
        flags += ["--cap-drop", cap]
    for cap in service.get("cap_add") or []:
        flags += ["--cap-add", cap]
    no_new_privileges = False
    for option in service.get("security_opt") or []:
        key, _, value = option.partition(":")
        if key == "no-new-privileges":
            no_new_privileges = value in ("", "true")
            if no_new_privileges:
                flags += ["--security-opt", "no-new-privileges"]
        else:
            flags += ["--security-opt", option]
    if not no_new_privileges:
        missing.append("security_opt: [no-new-privileges:true]")
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, target = volume.partition(":")
        else:
            source, target = volume.get("source", ""), volume.get("target", "")
        if source and not source.startswith((".", "/")):  # a named volume, not a bind mount
            flags += ["-v", f"{volume_prefix}-{source}:{target}"]
    if missing:
        raise CheckFailed(f"{COMPOSE.name}: service {name} lacks {', '.join(missing)}")
    return flags


def podman_tmpfs(spec: str) -> str:
    """A compose ``tmpfs`` entry as podman 4.3's ``--tmpfs``: it has no ``uid=``/``gid=`` options
    ("unknown mount option"), but ``U`` chowns the tmpfs to the container's user, which is what the
    compose file's ``uid=10001,gid=10001`` (the image's user) asks for."""
    path, _, options = spec.partition(":")
    if not options:
        return path
    kept = [o for o in options.split(",") if not o.startswith(("uid=", "gid="))]
    if len(kept) < len(options.split(",")):
        kept.append("U")
    return f"{path}:{','.join(kept)}"


def grace_s(name: str) -> int:
    """stop_grace_period of SERVICE in seconds (Compose durations: 90s, 1m30s)."""
    value = str(compose_service(name).get("stop_grace_period", "10s"))
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    if not parts or not any(parts.groups()):
        raise CheckFailed(f"{COMPOSE.name}: cannot read stop_grace_period {value!r} of {name}")
    h, m, s = (float(g or 0) for g in parts.groups())
    return int(h * 3600 + m * 60 + s)


# --------------------------------------------------------------------------- the prompt


def env(**settings: str) -> list[str]:
    """podman's ``-e NAME=VALUE`` for each setting, in order."""
    return [arg for name, value in settings.items() for arg in ("-e", f"{name}={value}")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def podman(*args: str, check: bool = True, timeout: float = 120, stdin: str | None = None) -> str:
    proc = subprocess.run(["podman", *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise CheckFailed(f"podman {args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip()


class Timer:
    def __init__(self) -> None:
        self.start = self.last = time.monotonic()

    def say(self, what: str) -> None:
        now = time.monotonic()
        print(f"   {now - self.start:6.1f} s (+{now - self.last:.1f}) {what}", flush=True)
        self.last = now


async def wait_ready(port: int, name: str, timeout: float) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout
    last = "no answer"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
                    last = f"{response.status} {await response.text()}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last = type(exc).__name__
            state = await asyncio.to_thread(podman, "inspect", name, "--format", "{{.State.Status}}")
            if state != "running":
                raise CheckFailed(f"{name} is {state}:\n{podman('logs', '--tail', '40', name, check=False)}")
            await asyncio.sleep(0.25)
    raise CheckFailed(f"{name}: /readyz not 200 within {timeout:.0f} s (last: {last})")


def logs(name: str) -> str:
    proc = subprocess.run(["podman", "logs", name], capture_output=True, text=True, timeout=60)
    return proc.stdout + proc.stderr


async def stop(name: str, grace: int, timer: Timer) -> None:
    await asyncio.to_thread(podman, "kill", "--signal", "TERM", name)
    try:
        code = await asyncio.to_thread(podman, "wait", name, timeout=grace)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{name} did not stop within {grace} s of SIGTERM") from None
    if code != "0":
        raise CheckFailed(f"{name} exited {code} after SIGTERM:\n{logs(name)[-3000:]}")
    timer.say(f"{name} stopped on SIGTERM, exit 0")


async def prompt(args: argparse.Namespace) -> None:
    import boto3
    from botocore.config import Config
    from PIL import Image

    sys.path.insert(0, str(REPO))
    from tests.fakes.telegram import FakeBotAPI

    timer = Timer()
    prefix = args.prefix
    worker_image = args.worker_image or args.image
    uid = podman("image", "inspect", args.image, "--format", "{{.Config.User}}").split(":")[0]
    worker_uid = podman("image", "inspect", worker_image, "--format", "{{.Config.User}}").split(":")[0]
    if worker_uid != uid:
        raise CheckFailed(f"{worker_image} runs as uid {worker_uid}, {args.image} as {uid}: the secrets need one")
    token = f"{secrets.randbelow(9 * 10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    s3_key_id = f"ci{secrets.token_hex(8)}"
    s3_secret = secrets.token_urlsafe(30)
    bucket = f"{prefix}-images".lower()[:63]
    s3 = boto3.client(
        "s3",
        endpoint_url=args.s3,
        region_name="us-east-1",
        aws_access_key_id=s3_key_id,
        aws_secret_access_key=s3_secret,
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket=bucket)  # as minio-init does in the compose file
    timer.say(f"bucket {bucket} at {args.s3}")

    telegram = FakeBotAPI(token=token)
    await telegram.start()
    timer.say(f"fake Bot API at {telegram.base_url}")

    names = {role: f"{prefix}-{role}" for role in ("bot", "worker")}
    cleanup_dirs: list[Path] = []
    try:
        # Compose `file:` secrets: read-only bind mounts of files only the image's uid may read.
        secret_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-secrets-"))
        cleanup_dirs.append(secret_dir)
        files = {}
        for secret, value in (("telegram_bot_token", token), ("s3_secret_access_key", s3_secret)):
            files[secret] = secret_dir / secret
            files[secret].write_text(value)
            os.chown(files[secret], int(uid), int(uid))
            files[secret].chmod(0o400)

        def mount(secret: str) -> list[str]:
            return ["-v", f"{files[secret]}:/run/secrets/{secret}:ro"]

        common = [
            *env(
                LOG_LEVEL="INFO",
                HTTP_HOST="127.0.0.1",
                SHUTDOWN_GRACE_S="20",
                QUEUE_BACKEND="kafka",
                KAFKA_BOOTSTRAP_SERVERS=args.kafka,
                KAFKA_REQUESTS_TOPIC=f"{prefix}.requests",
                KAFKA_RESULTS_TOPIC=f"{prefix}.results",
                KAFKA_DEAD_LETTER_TOPIC=f"{prefix}.dead-letters",
                KAFKA_PARTITIONS="2",
                STORAGE_BACKEND="s3",
                S3_ENDPOINT_URL=args.s3,
                S3_PUBLIC_ENDPOINT_URL=args.s3,
                S3_BUCKET=bucket,
                S3_REGION="us-east-1",
                S3_ACCESS_KEY_ID=s3_key_id,
            ),
            *mount("s3_secret_access_key"),
            *env(S3_SECRET_ACCESS_KEY_FILE="/run/secrets/s3_secret_access_key"),
        ]
        roles = {
            "bot": [
                *mount("telegram_bot_token"),
                *env(TELEGRAM_BOT_TOKEN_FILE="/run/secrets/telegram_bot_token", TELEGRAM_API_URL=telegram.base_url),
            ],
            "worker": env(GENERATOR=args.generator, GENERATOR_DEVICE="cpu", **TINY_ENV[args.generator]),
        }
        images = {"bot": args.image, "worker": worker_image}
        ports: dict[str, int] = {}
        for role, extra in roles.items():
            ports[role] = free_port()
            podman(
                "run",
                "-d",
                "--name",
                names[role],
                "--network",
                "host",
                *hardening(role, volume_prefix=prefix),
                *common,
                *extra,
                *env(HTTP_PORT=str(ports[role])),
                images[role],
                "python",
                "app.py",
                "--role",
                role,
            )
            timer.say(f"{names[role]} started: {images[role]}, python app.py --role {role}")
        await asyncio.gather(*(wait_ready(ports[r], names[r], args.timeout) for r in roles))
        timer.say("both answer /readyz")
        await telegram.wait_polling(timeout=args.timeout)
        timer.say("the bot polls the fake Bot API")

        telegram.send_text(USER_ID, PROMPT)
        [queued] = await telegram.wait_for(
            lambda c: c.method == "sendMessage" and c.chat_id == USER_ID, timeout=args.timeout
        )
        timer.say(f"the bot answered the prompt: {queued.text.splitlines()[0]!r}")
        try:
            [photo] = await telegram.wait_for(
                lambda c: c.method == "sendPhoto" and c.chat_id == USER_ID and c.ok,
                timeout=args.timeout,
            )
        except AssertionError as exc:
            texts = telegram.texts_to(USER_ID)
            raise CheckFailed(f"no picture delivered: {exc}; messages to the user: {texts}") from None
        png = photo.files.get("photo", b"")
        image = Image.open(io.BytesIO(png))
        if image.format != "PNG":
            raise CheckFailed(f"the photo is {image.format}, not a PNG")
        if PROMPT not in photo.text:
            raise CheckFailed(f"the caption does not show the prompt: {photo.text!r}")
        timer.say(f"picture delivered: sendPhoto, PNG {image.size[0]}×{image.size[1]}, {len(png)} bytes")

        listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        if len(listing) != 1:
            raise CheckFailed(f"expected one object in {bucket}, found {[o['Key'] for o in listing]}")
        key = listing[0]["Key"]
        stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if hashlib.sha256(stored).digest() != hashlib.sha256(png).digest():
            raise CheckFailed(f"s3://{bucket}/{key} is not the picture the user got")
        timer.say(f"s3://{bucket}/{key} holds the same {len(stored)} bytes (sha256)")

        for role in roles:
            await stop(names[role], grace_s(role), timer)
            text = logs(names[role])
            for what, value in (("bot token", token), ("S3 secret key", s3_secret)):
                if value in text:
                    raise CheckFailed(f"the {what} appears in the log of {names[role]}")
        timer.say("no secret in either log")
        if args.generator == "tiny":
            if "RANDOM TEST WEIGHTS" not in logs(names["worker"]):  # the GENERATOR=tiny warning
                raise CheckFailed(f"{names['worker']} did not say it ran the tiny Würstchen model")
            check_model_cache(f"{prefix}-model-cache")
            timer.say(f"the tiny model and translator are in the volume {prefix}-model-cache (/cache)")
    except BaseException:
        for name in names.values():
            print(f"--- last lines of {name}:", file=sys.stderr)
            print(logs(name)[-3000:], file=sys.stderr)
        raise
    finally:
        await telegram.stop()
        for name in names.values():
            podman("rm", "-f", "-t", "0", name, check=False)
        for folder in cleanup_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        for volume in podman("volume", "ls", "--format", "{{.Name}}", check=False).split():
            if volume.startswith(f"{prefix}-"):
                podman("volume", "rm", "-f", volume, check=False)


# GENERATOR=tiny builds its random-weight models on first start, by default under data/ (a tmpfs in the
# compose file, lost at every restart): here into the model cache volume, as an operator would, and
# without asking the Hugging Face hub (nothing is downloaded: the tiny models are written by code).
# One picture at a time, at most the fast profile, as the compose file's CPU worker.
TINY_ENV: dict[str, dict[str, str]] = {
    "fake": {},
    "tiny": {
        "TINY_MODEL_DIR": "/cache/tiny-wuerstchen",
        "TINY_TRANSLATION_MODEL_DIR": "/cache/tiny-marian",
        "HF_HUB_OFFLINE": "1",
        "MAX_BATCH": "1",
        "QUALITY_CAP": "fast",
    },
}


def check_model_cache(volume: str) -> None:
    """The tiny models were written to the model cache volume (the worker's root is read-only)."""
    mountpoint = Path(podman("volume", "inspect", volume, "--format", "{{.Mountpoint}}"))
    wanted = [
        mountpoint / "tiny-wuerstchen" / "TINY_WUERSTCHEN.json",
        mountpoint / "tiny-wuerstchen" / "prior" / "model_index.json",
        mountpoint / "tiny-wuerstchen" / "decoder" / "model_index.json",
        mountpoint / "tiny-marian" / "TINY_MARIAN.json",
    ]
    missing = [str(path.relative_to(mountpoint)) for path in wanted if not path.exists()]
    if missing:
        found = sorted(str(path.relative_to(mountpoint)) for path in mountpoint.rglob("*"))[:40]
        raise CheckFailed(f"the volume {volume} lacks {missing}; it holds {found}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_hard = sub.add_parser("hardening", help="the service's hardening as podman run flags")
    p_hard.add_argument("service")
    p_hard.add_argument("--volume-prefix", default="p2p-ci")
    p_grace = sub.add_parser("grace", help="the service's stop_grace_period in seconds")
    p_grace.add_argument("service")
    p_prompt = sub.add_parser("prompt", help="one prompt through the bot and worker containers")
    p_prompt.add_argument("--image", required=True)
    p_prompt.add_argument("--kafka", required=True, help="bootstrap servers, 127.0.0.1:PORT")
    p_prompt.add_argument("--s3", required=True, help="S3 endpoint URL, http://127.0.0.1:PORT")
    p_prompt.add_argument("--prefix", required=True, help="names of this run's containers and volumes")
    p_prompt.add_argument("--worker-image", help="image of the worker container (default: --image)")
    p_prompt.add_argument("--generator", choices=sorted(TINY_ENV), default="fake", help="the worker's GENERATOR")
    p_prompt.add_argument("--timeout", type=float, default=90.0, help="seconds per wait")
    args = parser.parse_args(argv)
    try:
        if args.command == "hardening":
            print("\n".join(hardening(args.service, args.volume_prefix)))
        elif args.command == "grace":
            print(grace_s(args.service))
        else:
            asyncio.run(prompt(args))
    except CheckFailed as exc:
        print(f"container_prompt_check: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
