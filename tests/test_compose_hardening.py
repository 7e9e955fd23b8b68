"""docker-compose.yml's least privilege, checked on the file as Compose reads it: Kafka on an internal
network that the internet-facing proxy is not on, the app containers read-only without
capabilities, and the bot's MinIO user read-only (minio-init run with a recording stand-in for
``mc``, so its policies and users are the ones the script really makes)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

from tests.test_compose import (
    APP_SERVICES,
    PUBLIC_SERVICES,
    SCALABLE_SERVICES,
    compose,
    environment_of,
    example_env,
    networks_of,
    raw_compose,
)

QUEUE_NETWORK = "queue"
# S3 actions that read (the bot's whole need: get objects, head the bucket, read the expiry rule).
READ_ACTIONS = {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:GetLifecycleConfiguration"}


def uses_kafka(service: dict) -> bool:
    env = environment_of(service)
    command = " ".join(service.get("command") or []) if isinstance(service.get("command"), list) else ""
    return "KAFKA_BOOTSTRAP_SERVERS" in env or "kafka:9092" in command


def test_kafka_is_on_an_internal_network_the_proxy_is_not_on():
    data = compose()
    services = data["services"]
    assert data["networks"][QUEUE_NETWORK].get("internal") is True, "the queue network has no route out"
    assert set(networks_of(services["kafka"])) == {QUEUE_NETWORK}, "Kafka joins the queue network only"
    on_queue = {name for name, s in services.items() if QUEUE_NETWORK in networks_of(s)}
    users = {name for name, s in services.items() if uses_kafka(s)}
    assert users == APP_SERVICES | {"kafka-init"}
    assert on_queue == users | {"kafka"}, "only Kafka's clients are on its network"
    for name in PUBLIC_SERVICES:
        assert QUEUE_NETWORK not in networks_of(services[name]), f"{name} faces the internet: not on Kafka's network"
        assert not set(networks_of(services[name])) & set(networks_of(services["kafka"]))
    for name in APP_SERVICES:
        assert "default" in networks_of(services[name]), f"{name} still reaches Telegram, the hub and MinIO"


def test_app_containers_are_read_only_without_capabilities():
    services = compose()["services"]
    for name in APP_SERVICES:
        service = services[name]
        assert service.get("read_only") is True, f"{name}: read_only: true"
        assert service.get("cap_drop") == ["ALL"], f"{name}: cap_drop: [ALL]"
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert not service.get("cap_add") and not service.get("privileged"), name
        tmpfs = [t.split(":")[0] for t in service.get("tmpfs", [])]
        assert "/tmp" in tmpfs, f"{name}: a writable /tmp"
    for name in SCALABLE_SERVICES:
        volumes = services[name]["volumes"]
        assert "model-cache:/cache" in volumes, f"{name}: the model cache stays a writable volume"
        data = next(t for t in services[name]["tmpfs"] if t.startswith("/app/data:"))
        assert "uid=10001" in data and "gid=10001" in data, "the app user (Dockerfile APP_UID) writes it"


def test_the_bot_has_the_read_only_s3_user():
    env = example_env()
    services = compose()["services"]
    bot = environment_of(services["bot"])
    assert bot["S3_ACCESS_KEY_ID"] == env["S3_BOT_ACCESS_KEY_ID"] != env["S3_ACCESS_KEY_ID"]
    assert bot["S3_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/s3_bot_secret_access_key"
    assert "s3_secret_access_key" not in services["bot"]["secrets"], "the workers' key stays out of the bot"
    for name in SCALABLE_SERVICES:
        worker = environment_of(services[name])
        assert worker["S3_ACCESS_KEY_ID"] == env["S3_ACCESS_KEY_ID"]
        assert "s3_bot_secret_access_key" not in services[name]["secrets"]
    text = Path(__file__).resolve().parents[1].joinpath("docker-compose.yml").read_text()
    assert re.search(r"\$\{S3_BOT_ACCESS_KEY_ID:\?", text), "the bot's user is required, no default"


def run_minio_init(tmp_path: Path, env: dict[str, str]) -> tuple[list[list[str]], dict[str, dict]]:
    """Run minio-init's script with a stand-in ``mc`` that records its arguments and keeps the
    policy files it is given; return the calls and the policies by name."""
    script = compose()["services"]["minio-init"]["command"][0]
    secrets, scratch = tmp_path / "secrets", tmp_path / "scratch"
    secrets.mkdir()
    scratch.mkdir()
    for name in ("s3_secret_access_key", "s3_bot_secret_access_key"):
        (secrets / name).write_text(f"secret-of-{name}")
    script = script.replace("/tmp/", f"{scratch}/").replace("/run/secrets/", f"{secrets}/")
    calls = tmp_path / "calls.jsonl"
    mc = tmp_path / "bin" / "mc"
    mc.parent.mkdir()
    mc.write_text(
        "#!/usr/bin/env python3\n"
        "import json, shutil, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "if sys.argv[1:4] == ['admin', 'policy', 'create']:\n"
        f"    shutil.copy(sys.argv[6], {str(tmp_path)!r} + '/policy-' + sys.argv[5] + '.json')\n"
    )
    mc.chmod(mc.stat().st_mode | stat.S_IEXEC)
    done = subprocess.run(
        ["sh", "-euc", script],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": f"{mc.parent}:{os.environ['PATH']}", **env},
    )
    assert done.returncode == 0, done.stderr
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    policies = {p.stem.removeprefix("policy-"): json.loads(p.read_text()) for p in tmp_path.glob("policy-*.json")}
    return recorded, policies


def actions(policy: dict) -> set[str]:
    return {a for statement in policy["Statement"] for a in statement["Action"]}


def test_minio_init_gives_the_bot_a_read_only_policy(tmp_path):
    env = {
        "MINIO_ROOT_USER": "root",
        "MINIO_ROOT_PASSWORD": "pw",
        "P2P_BUCKET": "pics",
        "P2P_ACCESS_KEY_ID": "p2p-app",
        "P2P_BOT_ACCESS_KEY_ID": "p2p-bot",
    }
    calls, policies = run_minio_init(tmp_path, env)
    attached = {(c[4], c[6]) for c in calls if c[:3] == ["admin", "policy", "attach"]}
    assert attached == {("p2p-app", "p2p-app"), ("p2p-bot-read", "p2p-bot")}
    added = {c[4]: c[5] for c in calls if c[:3] == ["admin", "user", "add"]}
    assert added == {"p2p-app": "secret-of-s3_secret_access_key", "p2p-bot": "secret-of-s3_bot_secret_access_key"}
    assert actions(policies["p2p-bot-read"]) <= READ_ACTIONS
    assert "s3:GetObject" in actions(policies["p2p-bot-read"])
    assert "s3:PutObject" in actions(policies["p2p-app"])
    for policy in policies.values():
        resources = {r for s in policy["Statement"] for r in s["Resource"]}
        assert resources <= {"arn:aws:s3:::pics", "arn:aws:s3:::pics/*"}, "limited to the bucket"


def test_minio_init_refuses_one_user_for_both_roles(tmp_path):
    script = compose()["services"]["minio-init"]["command"][0]
    assert "S3_BOT_ACCESS_KEY_ID must differ" in script
    env = {
        "MINIO_ROOT_USER": "root",
        "MINIO_ROOT_PASSWORD": "pw",
        "P2P_BUCKET": "pics",
        "P2P_ACCESS_KEY_ID": "same",
        "P2P_BOT_ACCESS_KEY_ID": "same",
    }
    try:
        run_minio_init(tmp_path, env)
    except AssertionError as exc:
        assert "must differ" in str(exc)
    else:
        raise AssertionError("minio-init gave the bot the workers' read-write user")


def test_env_example_names_the_bots_user():
    assert "S3_BOT_ACCESS_KEY_ID" in raw_compose()["services"]["minio-init"]["environment"]["P2P_BOT_ACCESS_KEY_ID"]
    assert example_env()["S3_BOT_ACCESS_KEY_ID"] == "p2p-bot"
