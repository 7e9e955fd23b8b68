"""The deployment files checked against the program, without a Docker engine.

docker-compose.yml, the Dockerfile, .env.example, the Prometheus configuration and the Grafana
provisioning must agree with the code: every command is a real role of app.py, every environment
variable an app container gets is a real setting (config.settings.Settings) or a known third-party
variable, ports and health-check paths are the app's, Prometheus scrapes the app's /metrics, and
the dashboard queries only metrics the app exports. scripts/lint_deploy.sh (hadolint + the Compose
Specification's JSON schema) runs here too, so a lint error fails the suite.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
LINT_SCRIPT = ROOT / "scripts" / "lint_deploy.sh"
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"
REQUIREMENTS_SCRIPT = ROOT / "deploy" / "docker" / "requirements_from_pyproject.py"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = ROOT / "deploy" / "helm" / "prompt2pic" / "dashboards" / "prompt2pic.json"  # the one copy, in the chart

# Services built from this repository's Dockerfile: they run app.py.
APP_SERVICES = {"bot", "worker", "worker-gpu"}
# Services that must scale with `docker compose up -d --scale NAME=N`.
SCALABLE_SERVICES = {"worker", "worker-gpu"}
# The only service allowed to publish ports on every interface (the HTTPS front).
PUBLIC_SERVICES = {"proxy"}
HEALTHCHECK_COMMAND = ["CMD", "python", "/usr/local/bin/p2p-healthcheck"]
HEALTH_PATHS = {"/healthz", "/readyz"}

# Environment variables an app container may get that are not Settings fields, and why.
THIRD_PARTY_ENV = {
    "HF_HOME": "Hugging Face cache folder: model weights live in the model-cache volume",
    "NVIDIA_VISIBLE_DEVICES": "NVIDIA Container Toolkit: GPUs visible in the container",
    "NVIDIA_DRIVER_CAPABILITIES": "NVIDIA Container Toolkit: driver libraries mounted",
}

# Metrics the app exports, as Prometheus names them, with their labels (besides the target labels
# that Prometheus adds to every series).
METRIC_LABELS: dict[str, set[str]] = {
    "p2p_generation_duration_seconds": {"profile", "batch_size"},
    "p2p_queue_wait_seconds": set(),
    "p2p_end_to_end_seconds": set(),
    "p2p_batch_size": set(),
    "p2p_jobs_total": {"outcome", "profile"},
    "p2p_consumer_lag": set(),
    "p2p_jobs_in_flight": set(),
    "p2p_storage_errors_total": set(),
    "p2p_telegram_errors_total": set(),
    "p2p_process_cpu_utilization": set(),
    "p2p_system_cpu_utilization": set(),
    "p2p_network_packets_per_second": set(),
    "p2p_quality_profile_selected_total": {"profile"},
    "p2p_jobs_accepted_total": set(),
    "p2p_answers_total": {"in_time"},
    "p2p_first_reply_seconds": set(),
    "p2p_lane_wait_seconds": {"lane"},
    "p2p_lane_jobs_total": {"lane", "reason"},
}
HISTOGRAMS = {
    "p2p_first_reply_seconds",
    "p2p_lane_wait_seconds",
    "p2p_generation_duration_seconds",
    "p2p_queue_wait_seconds",
    "p2p_end_to_end_seconds",
    "p2p_batch_size",
}
TARGET_LABELS = {"instance", "job"}
PROMETHEUS_OWN_METRICS = {"up"}

SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE|SIGNING_KEY|ACCESS_KEY)", re.IGNORECASE)
TELEGRAM_TOKEN = re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b")


# --- helpers ------------------------------------------------------------------------------------


def settings_env_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def settings_default(name: str) -> Any:
    return Settings.model_fields[name].default


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {raw!r}"
        values[key.strip()] = value.strip()
    return values


_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class MissingVariable(KeyError):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: $$, ${V}, ${V:-d}, ${V-d}, ${V:?e}, ${V?e}, $V."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _INTERPOLATION.sub(substitute, text)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def compose_variables(text: str) -> set[str]:
    names = set()
    for match in _INTERPOLATION.finditer(text):
        if match.group(0) != "$$":
            names.add(match.group("name") or match.group("bare"))
    return names


def example_env() -> dict[str, str]:
    """.env.example with the blank secrets filled in, as a user's .env would be."""
    env = read_env_file(ENV_EXAMPLE)
    return {key: value or f"test-{key.lower()}" for key, value in env.items()}


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    """docker-compose.yml as Compose sees it with the example .env."""
    return interpolate_tree(raw_compose(), example_env())


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def networks_of(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The networks a service joins (``default`` when it names none), as name -> options."""
    nets = service.get("networks")
    if nets is None:
        return {"default": {}}
    if isinstance(nets, list):
        return {name: {} for name in nets}
    return {name: options or {} for name, options in nets.items()}


def duration_seconds(text: str) -> float:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", str(text))
    assert parts and "".join(n + u for n, u in parts) == str(text), f"not a duration: {text!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        instruction, _, args = full.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for instruction, args in dockerfile_instructions():
        if instruction == "FROM":
            words = args.split()
            current = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else f"#{len(stages)}"
            stages[current] = [(instruction, args)]
        elif current is not None:
            stages[current].append((instruction, args))
    return stages


def dockerfile_arg_defaults() -> dict[str, str]:
    defaults = {}
    for instruction, args in dockerfile_instructions():
        if instruction == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            defaults.setdefault(name.strip(), value.strip())
    return defaults


def stage_chain(stages: dict[str, list[tuple[str, str]]], name: str) -> list[str]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = [name]
    while True:
        base = stages[chain[-1]][0][1].split()[0]
        if base not in stages:
            return chain
        chain.append(base)


def published_ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host_ip, host_port, container_port) for every published port."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out.append((entry.get("host_ip", ""), str(entry.get("published", "")), str(entry["target"])))
            continue
        spec = str(entry).split("/")[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            out.append(("", parts[0], parts[1]))
        else:
            out.append(("", "", parts[0]))
    return out


def role_of(command: list[str]) -> str:
    assert isinstance(command, list), f"command must be a list (exec form): {command!r}"
    assert command[:2] == ["python", "app.py"], f"not `python app.py ...`: {command}"
    assert "--role" in command, f"no --role in {command}"
    return command[command.index("--role") + 1]


def promql_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b(p2p_[a-z0-9_]+|up)\b", expr))


def metric_base(name: str) -> str:
    if name in METRIC_LABELS or name in PROMETHEUS_OWN_METRICS:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)]
    raise AssertionError(f"{name} is not a metric the app exports")


def dashboard_panels() -> list[dict[str, Any]]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = []
    for panel in data["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


# --- the lint script ----------------------------------------------------------------------------


def run_lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(LINT_SCRIPT), *args], capture_output=True, text=True, timeout=180, cwd=ROOT)


def test_lint_script_passes_on_the_repository():
    result = run_lint()
    assert result.returncode == 0, f"scripts/lint_deploy.sh failed:\n{result.stdout}\n{result.stderr}"


def test_lint_script_fails_on_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = run_lint(str(bad), str(COMPOSE_FILE))
    assert result.returncode != 0, result.stdout
    assert "DL3007" in result.stdout


def test_lint_script_fails_on_a_compose_file_outside_the_spec(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text(encoding="utf-8").replace(
        "condition: service_completed_successfully", "condition: service_finished", 1
    )
    bad.write_text(text)
    result = run_lint(str(DOCKERFILE), str(bad))
    assert result.returncode != 0, result.stdout
    assert "Compose Specification" in result.stderr


def test_vendored_schema_is_the_recorded_copy():
    import hashlib

    schema = ROOT / "deploy" / "schema" / "compose-spec.json"
    readme = (ROOT / "deploy" / "schema" / "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(schema.read_bytes()).hexdigest()
    assert digest in readme, "deploy/schema/README.md must record the schema's sha256"
    assert (ROOT / "deploy" / "schema" / "LICENSE.compose-spec").is_file()
    assert json.loads(schema.read_text(encoding="utf-8"))["title"] == "Compose Specification"


# --- services, commands, environment ------------------------------------------------------------


def test_stack_has_the_expected_services():
    services = set(compose()["services"])
    assert {"kafka", "kafka-init", "minio", "minio-init", "prometheus", "grafana"} <= services
    built = {name for name, svc in compose()["services"].items() if "build" in svc}
    assert built == APP_SERVICES


def test_every_app_command_is_a_real_role():
    try:
        from app import ROLES
    except ImportError as exc:  # pragma: no cover - only while app.py is being written
        pytest.fail(f"app.ROLES (the tuple of --role choices) cannot be imported: {exc}")
    for name in APP_SERVICES:
        role = role_of(compose()["services"][name]["command"])
        assert role in ROLES, f"{name}: --role {role} is not one of app.ROLES {ROLES}"
    assert role_of(compose()["services"]["bot"]["command"]) == "bot"
    for name in SCALABLE_SERVICES:
        assert role_of(compose()["services"][name]["command"]) == "worker"
    # The images' default commands too.
    for stage, instructions in dockerfile_stages().items():
        for instruction, args in instructions:
            if instruction == "CMD":
                assert role_of(json.loads(args)) in ROLES, f"Dockerfile stage {stage}: {args}"


def test_app_environment_is_made_of_real_settings():
    settings = settings_env_names()
    file_settings = secret_file_settings()
    for name in APP_SERVICES:
        for var in environment_of(compose()["services"][name]):
            if var in settings or var in THIRD_PARTY_ENV:
                continue
            if var.endswith("_FILE") and var[: -len("_FILE")] in file_settings:
                continue
            pytest.fail(
                f"service {name} sets {var}, which is neither a field of config.settings.Settings "
                f"nor a known third-party variable (THIRD_PARTY_ENV) nor NAME_FILE of a secret setting"
            )
    # The images' own ENV lines follow the same rule.
    for instruction, args in dockerfile_instructions():
        if instruction == "ENV":
            for var in re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", args):
                if var.startswith(("PYTHON", "PIP_")) or var == "PATH":
                    continue
                assert var in settings or var in THIRD_PARTY_ENV, f"Dockerfile ENV {var} is not a setting"


def secret_file_settings() -> set[str]:
    """Settings the entry point can read from NAME_FILE (its `for name in ...` list)."""
    match = re.search(r"^for name in ([A-Z0-9_ ]+); do", ENTRYPOINT.read_text(), re.MULTILINE)
    assert match, "deploy/docker/entrypoint.sh: no `for name in ...; do` list"
    names = set(match.group(1).split())
    assert names <= settings_env_names(), names - settings_env_names()
    return names


def test_environment_values_are_valid_settings():
    # The values Compose passes must parse as Settings (types, enums).
    for name in APP_SERVICES:
        env = {k: v for k, v in environment_of(compose()["services"][name]).items() if k in settings_env_names()}
        Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})


def test_topics_and_partitions_agree_between_kafka_init_and_the_app():
    services = compose()["services"]
    init_env = environment_of(services["kafka-init"])
    topics = init_env["P2P_TOPICS"].split()
    for name in APP_SERVICES:
        env = environment_of(services[name])
        requests = env["KAFKA_REQUESTS_TOPIC"]  # and the relaxed lane's topic beside it (adapters/kafka/lanes.py)
        assert topics == [requests, requests + ".relaxed", env["KAFKA_RESULTS_TOPIC"], env["KAFKA_DEAD_LETTER_TOPIC"]]
        assert init_env["P2P_PARTITIONS"] == env["KAFKA_PARTITIONS"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["QUEUE_BACKEND"] == "kafka" and env["STORAGE_BACKEND"] == "s3"
        assert env["S3_ENDPOINT_URL"] == "http://minio:9000"
    # With the example .env, the names are the app's defaults.
    assert topics == [
        settings_default("kafka_requests_topic"),
        settings_default("kafka_requests_topic") + ".relaxed",
        settings_default("kafka_results_topic"),
        settings_default("kafka_dead_letter_topic"),
    ]
    assert environment_of(services["minio-init"])["P2P_BUCKET"] == environment_of(services["bot"])["S3_BUCKET"]


def test_init_scripts_are_valid_shell():
    services = compose()["services"]
    for name, shell in (("kafka-init", "bash"), ("minio-init", "sh")):
        script = services[name]["command"][0]
        assert "$$" not in script
        result = subprocess.run([shell, "-n"], input=script, capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"


# --- secrets --------------------------------------------------------------------------------------


def test_secrets_reach_the_app_as_files_only():
    data = compose()
    for name in APP_SERVICES:
        service = data["services"][name]
        mounted = {}
        for entry in service.get("secrets", []):
            entry = {"source": entry} if isinstance(entry, str) else entry
            mounted[entry.get("target", f"/run/secrets/{entry['source']}")] = entry
        for var, value in environment_of(service).items():
            if var.endswith("_FILE"):
                assert value in mounted, f"{name}: {var}={value} is not a secret mounted in the service"
                entry = mounted[value]
                assert "file" in data["secrets"][entry["source"]], f"{name}: {entry} is not a file secret"
            else:
                assert not SECRET_NAME.search(var) or var == "S3_ACCESS_KEY_ID", (
                    f"{name}: secret setting {var} is passed as a plain variable; use {var}_FILE"
                )
    assert "TELEGRAM_BOT_TOKEN_FILE" in environment_of(data["services"]["bot"])
    for name in SCALABLE_SERVICES:
        assert "TELEGRAM_BOT_TOKEN_FILE" not in environment_of(data["services"][name]), "workers need no token"


def test_secrets_are_files_in_the_secrets_folder():
    """Compose copies `environment:` secrets into the container, which it refuses for a read-only one
    ("cannot create secret ... in read-only service bot: `file` is the sole supported option", Compose
    2.33.1 and later): every secret is a file in P2P_SECRETS_DIR (./secrets), a folder kept out of git.
    uid/gid/mode are ignored for file secrets (Compose warns), so none are written."""
    data = raw_compose()
    for secret, spec in data["secrets"].items():
        assert set(spec) == {"file"}, f"secret {secret}: {spec} (only `file:` works with read_only services)"
        assert spec["file"] == "${P2P_SECRETS_DIR:-./secrets}/" + secret, spec
    assert data["services"]["bot"]["read_only"] is True
    for name, service in data["services"].items():
        for entry in service.get("secrets", []):
            assert isinstance(entry, str) or not {"uid", "gid", "mode"} & set(entry), (
                f"{name}: uid/gid/mode are ignored for file secrets; make the file readable instead"
            )
    assert "/secrets/" in (ROOT / ".gitignore").read_text().split()


def test_compose_file_holds_no_secret_value():
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert not TELEGRAM_TOKEN.search(text), "a Telegram bot token is written in docker-compose.yml"
    for name, service in raw_compose()["services"].items():
        for var, value in environment_of(service).items():
            if not SECRET_NAME.search(var):
                continue
            ok = value.startswith("/run/secrets/") or re.fullmatch(r"\$\{[A-Z0-9_]+(:?\?[^}]*)?\}", value)
            assert ok, f"{name}: {var} must come from a secret file or a required variable, not {value!r}"
    for var in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "S3_ACCESS_KEY_ID"):
        assert re.search(r"\$\{" + var + r":\?", text), f"{var} must be required (${{{var}:?...}}), no default"


def test_env_example_holds_no_secret_and_covers_every_variable():
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    example = read_env_file(ENV_EXAMPLE)
    assert not TELEGRAM_TOKEN.search(text)
    assert example.get("MINIO_ROOT_PASSWORD", None) == "", ".env.example: MINIO_ROOT_PASSWORD must be present and empty"
    for key in ("TELEGRAM_BOT_TOKEN", "S3_SECRET_ACCESS_KEY", "GRAFANA_ADMIN_PASSWORD"):
        assert key not in example, f".env.example: {key} is a secret file (P2P_SECRETS_DIR), not a variable"
    used = compose_variables(COMPOSE_FILE.read_text(encoding="utf-8"))
    used |= {spec["environment"] for spec in raw_compose()["secrets"].values() if "environment" in spec}
    assert used - set(example) == set(), f".env.example lacks {sorted(used - set(example))}"
    assert set(example) - used == set(), f".env.example has unused {sorted(set(example) - used)}"


def test_missing_passwords_stop_compose():
    with pytest.raises(MissingVariable):
        interpolate_tree(raw_compose(), read_env_file(ENV_EXAMPLE))


def test_env_file_stays_out_of_git_and_images():
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert ".env" in gitignore or "/.env" in gitignore
    dockerignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert dockerignore[0] == "*", ".dockerignore must be an allow-list (start with *)"
    assert not any(line.startswith("!") and ".env" in line for line in dockerignore)


# --- ports, health checks, start order ---------------------------------------------------------------


def test_ports_and_health_checks_match_the_app():
    port = str(settings_default("http_port"))
    services = compose()["services"]
    for name in APP_SERVICES:
        service = services[name]
        env = environment_of(service)
        assert env.get("HTTP_PORT", port) == port
        for _host_ip, _host_port, container_port in published_ports(service):
            assert container_port == port, f"{name} publishes container port {container_port}, app listens on {port}"
        test = service["healthcheck"]["test"]
        assert test[:3] == HEALTHCHECK_COMMAND and test[3] in HEALTH_PATHS, f"{name}: {test}"
    # The health-check script's default is the app's default port; the image exposes it.
    namespace: dict[str, Any] = {}
    exec(compile(HEALTHCHECK.read_text(), str(HEALTHCHECK), "exec"), namespace)
    assert namespace["DEFAULT_PORT"] == settings_default("http_port")
    assert namespace["DEFAULT_PATH"] == "/healthz"
    instructions = dockerfile_instructions()
    assert ("EXPOSE", port) in instructions
    healthchecks = [args for instruction, args in instructions if instruction == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and healthchecks[0].endswith('"/usr/local/bin/p2p-healthcheck", "/healthz"]')


def test_only_the_https_front_is_public():
    for name, service in compose()["services"].items():
        for host_ip, host_port, container_port in published_ports(service):
            if name in PUBLIC_SERVICES:
                continue
            assert host_ip in ("127.0.0.1", "::1", "[::1]"), (
                f"{name} publishes {host_port}->{container_port} on {host_ip or 'every interface'}; "
                "bind it to 127.0.0.1 (SSH tunnel) or put it behind the proxy"
            )
    # Kafka, Prometheus's targets and the init jobs publish nothing at all.
    for name in ("kafka", "kafka-init", "minio-init", *SCALABLE_SERVICES):
        assert not compose()["services"][name].get("ports"), f"{name} must not publish ports"


def test_start_order():
    services = compose()["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy: no health check"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f'{target} is a one-shot job: restart: "no"'
            else:
                pytest.fail(f"{name} -> {target}: {condition} does not wait for readiness")
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["kafka-init"]["condition"] == "service_completed_successfully"
        assert depends["minio-init"]["condition"] == "service_completed_successfully"
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_workers_scale():
    services = compose()["services"]
    for name in SCALABLE_SERVICES:
        service = services[name]
        assert "container_name" not in service and not service.get("ports")
        assert "WORKER_ID" not in environment_of(service), "replicas would share one WORKER_ID"
        grace = float(environment_of(service).get("SHUTDOWN_GRACE_S", settings_default("shutdown_grace_s")))
        assert duration_seconds(service["stop_grace_period"]) > grace + 10, (
            f"{name}: stop_grace_period must leave the app its SHUTDOWN_GRACE_S ({grace} s) to finish"
        )
        assert service.get("init") is True, "an init process forwards SIGTERM and reaps children"
        assert any(volume.endswith(":/cache") for volume in service["volumes"]), "model cache volume"
        assert environment_of(service)["HF_HOME"].startswith("/cache/")


def test_gpu_profile():
    gpu = compose()["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["target"] == "worker-cuda"
    assert environment_of(gpu)["GENERATOR_DEVICE"] == "cuda"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "worker" in networks_of(gpu)["default"]["aliases"], "Prometheus finds GPU workers as `worker`"
    for name, service in compose()["services"].items():
        if name != "worker-gpu":
            assert "gpu" not in (service.get("profiles") or [])


def test_kafka_is_kraft_with_a_persistent_volume():
    data = compose()
    kafka = data["services"]["kafka"]
    env = environment_of(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert f"{env['KAFKA_NODE_ID']}@kafka:9093" == env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16, "CLUSTER_ID: base64url of 16 bytes"
    volume = next(v for v in kafka["volumes"] if v.endswith(":" + env["KAFKA_LOG_DIRS"]))
    assert volume.split(":")[0] in data["volumes"], "Kafka's log dir must be a named volume"
    assert data["services"]["kafka-init"]["image"] == kafka["image"]
    for name in ("minio", "prometheus", "grafana", "bot"):
        mounts = data["services"][name].get("volumes", [])
        assert any(str(v).split(":")[0] in data["volumes"] for v in mounts), f"{name} keeps no data"


def test_images_are_pinned():
    for name, service in compose()["services"].items():
        image = service["image"]
        if "build" in service:
            continue
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: image {image} is not pinned"
    for instruction, args in dockerfile_instructions():
        if instruction == "ARG" and args.startswith("PYTHON_IMAGE="):
            assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+", args), args


# --- Dockerfile -----------------------------------------------------------------------------------


def test_dockerfile_targets():
    stages = dockerfile_stages()
    for target in ("bot", "worker-cpu", "worker-cuda"):
        chain = stage_chain(stages, target)
        assert "runtime" in chain, f"{target} must build on the runtime stage"
        users = [args for stage in chain for instruction, args in stages[stage] if instruction == "USER"]
        assert users and users[0].split(":")[0] not in ("root", "0"), f"{target} runs as root"
    assert list(stages)[-1] == "bot", "a plain `docker build .` gives the small bot image"
    # The bot image has no torch; the worker images do.
    bot_venv = " ".join(args for _, args in stages["bot-venv"])
    assert "torch" not in bot_venv and "requirements-worker" not in bot_venv
    for stage in ("worker-cpu-venv", "worker-cuda-venv"):
        text = " ".join(args for _, args in stages[stage])
        assert "torch==${TORCH_VERSION}" in text and "requirements-worker.txt" in text
    assert "TORCH_CPU_INDEX_URL" in " ".join(args for _, args in stages["worker-cpu-venv"])
    # Compose's build targets and build args exist in the Dockerfile.
    args = dockerfile_arg_defaults()
    for name in APP_SERVICES:
        build = compose()["services"][name]["build"]
        assert build["target"] in stages
        for arg in build.get("args", {}):
            assert arg in args, f"{name}: build arg {arg} is not an ARG of the Dockerfile"
    # No secret is baked in.
    for instruction, text in dockerfile_instructions():
        if instruction in ("ENV", "ARG"):
            assert not SECRET_NAME.search(text), f"Dockerfile {instruction} {text}"


def test_dockerfile_copies_all_of_the_app():
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    wanted |= {f"{module}.py" for module in pyproject["tool"]["setuptools"].get("py-modules", [])}
    copied = set()
    for instruction, args in dockerfile_stages()["source"]:
        if instruction == "COPY":
            copied.add(args.split()[0].rstrip("/"))
    assert wanted <= copied, f"the image lacks {sorted(wanted - copied)}"
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    assert wanted <= allowed, f".dockerignore keeps out {sorted(wanted - allowed)}"


def test_requirements_from_pyproject():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for extra, expected in ((None, project["dependencies"]), ("worker", project["optional-dependencies"]["worker"])):
        argv = [sys.executable, str(REQUIREMENTS_SCRIPT), str(ROOT / "pyproject.toml")] + ([extra] if extra else [])
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split("\n")
        assert [line for line in out if line] == expected


# --- entry point and health check scripts ----------------------------------------------------------


def run_entrypoint(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "sh", "-c", 'printf "%s|%s" "$TELEGRAM_BOT_TOKEN" "${TELEGRAM_BOT_TOKEN_FILE-unset}"'],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_entrypoint_reads_secret_files(tmp_path):
    secret = tmp_path / "telegram_bot_token"
    secret.write_text("123456:test-token\n")
    result = run_entrypoint({"TELEGRAM_BOT_TOKEN_FILE": str(secret)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "123456:test-token|unset"

    assert run_entrypoint({"TELEGRAM_BOT_TOKEN": "x", "TELEGRAM_BOT_TOKEN_FILE": str(secret)}, tmp_path).returncode != 0
    missing = run_entrypoint({"TELEGRAM_BOT_TOKEN_FILE": str(tmp_path / "nope")}, tmp_path)
    assert missing.returncode != 0 and "nope" in missing.stderr
    (tmp_path / "empty").write_text("")
    assert run_entrypoint({"TELEGRAM_BOT_TOKEN_FILE": str(tmp_path / "empty")}, tmp_path).returncode != 0
    plain = run_entrypoint({"TELEGRAM_BOT_TOKEN": "plain"}, tmp_path)
    assert plain.returncode == 0 and plain.stdout == "plain|unset"


@pytest.fixture
def http_app():
    """A stand-in for the app's HTTP endpoint: /healthz 200, /readyz 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response({"/healthz": 200, "/readyz": 503}.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_healthcheck_script(http_app):
    def check(*args: str, **env: str) -> int:
        full_env = {"PATH": os.environ["PATH"], "HTTP_PORT": str(http_app), **env}
        return subprocess.run(
            [sys.executable, str(HEALTHCHECK), *args], env=full_env, capture_output=True, timeout=30
        ).returncode

    assert check() == 0
    assert check("/healthz", HTTP_HOST="0.0.0.0") == 0
    assert check("/readyz") == 1
    assert check("/healthz", HTTP_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9") == 0
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free_port = str(probe.getsockname()[1])
    assert check("/healthz", HTTP_PORT=free_port) == 1


# --- Prometheus and Grafana --------------------------------------------------------------------------


def test_prometheus_scrapes_the_app():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    services = compose()["services"]
    # A DNS name resolves to every container of the service of that name and of the services that
    # carry it as a network alias.
    names: dict[str, set[str]] = {}
    for name in APP_SERVICES:
        names.setdefault(name, set()).add(name)
        for alias in networks_of(services[name]).get("default", {}).get("aliases", []):
            names.setdefault(alias, set()).add(name)
    port = settings_default("http_port")
    scraped = set()
    for job in config["scrape_configs"]:
        if job["job_name"] == "prometheus":
            continue
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert job["dns_sd_configs"], f"{job['job_name']}: app targets come from DNS (scaled replicas)"
        for sd in job["dns_sd_configs"]:
            assert sd["type"] == "A" and sd["port"] == port
            for dns_name in sd["names"]:
                assert dns_name in names, f"{job['job_name']}: {dns_name} is not an app service"
                scraped |= names[dns_name]
                if dns_name in services:
                    assert environment_of(services[dns_name]).get("HTTP_PORT", str(port)) == str(port)
    assert scraped == APP_SERVICES
    prometheus = services["prometheus"]
    assert any(v.startswith("./deploy/prometheus/prometheus.yml:") for v in prometheus["volumes"])


def test_grafana_provisioning():
    services = compose()["services"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "prompt2pic.yml").read_text())
    (provider,) = providers["providers"]
    assert mounts["./deploy/helm/prompt2pic/dashboards"] == provider["options"]["path"]  # the one copy
    for panel in dashboard_panels():
        for node in [panel.get("datasource"), *[t.get("datasource") for t in panel.get("targets", [])]]:
            if node is not None:
                assert node == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in environment_of(services["grafana"])


def test_dashboard_queries_only_exported_metrics_and_covers_them_all():
    seen = set()
    queries = 0
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            expr = target["expr"]
            queries += 1
            metrics = {metric_base(name) for name in promql_metrics(expr)}
            assert metrics, f"panel {panel['title']!r}: no known metric in {expr}"
            seen |= metrics
            allowed = {"le"} | TARGET_LABELS | set().union(*(METRIC_LABELS.get(m, set()) for m in metrics))
            for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
                labels = {label.strip() for label in group.split(",") if label.strip()}
                assert labels <= allowed, f"panel {panel['title']!r}: unknown labels {labels - allowed} in {expr}"
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
                assert label in allowed, f"panel {panel['title']!r}: legend uses unknown label {label}"
    assert queries >= len(METRIC_LABELS)
    assert set(METRIC_LABELS) - seen == set(), f"the dashboard shows nothing of {sorted(set(METRIC_LABELS) - seen)}"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_lint_script_is_executable():
    assert os.access(LINT_SCRIPT, os.X_OK)
