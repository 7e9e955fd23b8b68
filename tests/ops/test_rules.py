"""The alerting rules as promtool, Helm and Alertmanager see them: valid, unit-tested (an alert that
fires and one that stays quiet for every alert), one source for compose and the chart, each with a
severity, a summary and a runbook section in docs/operations.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.helm.conftest import CHART, RELEASE, SITE_SETS, Helm

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules/prompt2pic.yml"
CHART_RULES = CHART / "rules/prompt2pic.yml"
UNIT_TESTS = sorted((ROOT / "tests/ops").glob("*_test.yml"))
OPERATIONS = ROOT / "docs/operations.md"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
SEVERITIES = {"critical", "warning"}


def alerts() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT / "tests/ops")


def test_promtool_checks_the_rules_and_the_config(promtool: str):
    done = run(promtool, "check", "rules", str(RULES), str(CHART_RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    done = run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass(promtool: str):
    done = run(promtool, "test", "rules", *map(str, UNIT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_promtool_unit_tests_can_fail(promtool: str, tmp_path: Path):
    """The unit tests notice a broken rule: with the no-worker alert's threshold raised out of
    reach, its firing case fails."""
    broken = RULES.read_text().replace(
        "(sum(increase(p2p_jobs_accepted_total[15m])) > 0)", "(sum(increase(p2p_jobs_accepted_total[15m])) > 1e9)"
    )
    assert broken != RULES.read_text()
    (tmp_path / "rules.yml").write_text(broken)
    unit = yaml.safe_load((ROOT / "tests/ops/prompt2pic_test.yml").read_text())
    unit["rule_files"] = [str(tmp_path / "rules.yml")]
    (tmp_path / "unit.yml").write_text(yaml.safe_dump(unit))
    done = run(promtool, "test", "rules", str(tmp_path / "unit.yml"))
    assert done.returncode != 0 and "P2PNoWorkerWhileJobsWait" in done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert set(alerts()) - fired == set(), "alerts never shown firing"
    assert set(alerts()) - quiet == set(), "alerts never shown quiet"


def test_every_alert_has_severity_summary_and_runbook():
    sections = {github_anchor(line.lstrip("#")) for line in OPERATIONS.read_text().splitlines() if line.startswith("#")}
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/operations.md#"), f"{name}: {url}"
        assert url.split("#", 1)[1] in sections, f"{name}: no section {url} in docs/operations.md"
        assert name in OPERATIONS.read_text(), f"{name} is not described in docs/operations.md"


def test_chart_rules_are_the_compose_rules():
    assert CHART_RULES.read_text() == RULES.read_text(), (
        "cp deploy/prometheus/rules/prompt2pic.yml deploy/helm/prompt2pic/rules/"
    )


def test_compose_prometheus_loads_the_rules():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(
        v.rsplit(":", 1)[0].split(":", 1) for v in compose["services"]["prometheus"]["volumes"] if v.startswith("./")
    )
    (pattern,) = config["rule_files"]
    folder, glob = pattern.rsplit("/", 1)
    assert mounts.get("./deploy/prometheus/rules") == folder
    assert RULES in (ROOT / "deploy/prometheus/rules").glob(glob)


def test_prometheus_rule_renders_the_same_rules_only_with_the_operator(helm: Helm):
    operator = ["--api-versions", "monitoring.coreos.com/v1/PrometheusRule"]

    def render(*extra: str) -> list[dict[str, Any]]:
        sets = [arg for value in SITE_SETS for arg in ("--set", value)]  # what the chart requires
        done = helm.run("template", RELEASE, str(CHART), *sets, *extra)
        assert done.returncode == 0, done.stderr
        return [d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "PrometheusRule"]

    (rule,) = render(*operator)
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert render() == [], "no PrometheusRule without the operator's CRD"
    assert render(*operator, "--set", "prometheusRule.enabled=false") == []


def test_service_monitor_gives_the_compose_job_names(helm: Helm):
    """The dashboard's and the alerts' `job` labels are the compose scrape jobs' names; the
    ServiceMonitor relabels each Service's component to the same names (else `job` would be the
    Service's name and the "Workers up" panel empty)."""
    jobs = {c["job_name"] for c in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]}
    done = helm.run(
        "template",
        RELEASE,
        str(CHART),
        "-f",
        str(CHART / "values-gpu.yaml"),
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "cpuWorker.enabled=true",
        *(arg for value in SITE_SETS for arg in ("--set", value)),  # what the chart requires
    )
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    (endpoint,) = monitor["spec"]["endpoints"]
    components = {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in docs if d["kind"] == "Service"}
    assert {"bot", "worker-cpu", "worker-gpu"} <= components
    source = "__meta_kubernetes_service_label_app_kubernetes_io_component"
    for component in components:
        job = None
        for step in endpoint["relabelings"]:
            if step["sourceLabels"] == [source] and re.fullmatch(step["regex"], component):
                job = step["replacement"]
        expected = "prompt2pic-bot" if component == "bot" else "prompt2pic-worker"
        assert job == expected and job in jobs, f"{component}: job {job}"
    dashboard = (ROOT / "deploy/helm/prompt2pic/dashboards/prompt2pic.json").read_text()
    used = set(re.findall(r'job=\\"([^\\"]+)\\"', dashboard)) | set(re.findall(r'job="([^"]+)"', RULES.read_text()))
    assert used and used <= jobs


def test_alertmanager_config_is_valid(tmp_path: Path):
    """amtool (Debian's prometheus-alertmanager, 0.25) checks the config. It predates
    telegram_configs' bot_token_file (Alertmanager 0.26; compose runs 0.28), so it checks a copy
    that names the token inline; the real file must read the token from the bot's secret."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    (receiver,) = config["receivers"]
    (telegram,) = receiver["telegram_configs"]
    assert telegram["bot_token_file"] == "/run/secrets/telegram_bot_token" and "bot_token" not in telegram
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["alertmanager"]
    assert compose["profiles"] == ["alerts"] and "telegram_bot_token" in compose["secrets"]
    placeholder = "-1000000000000  # P2P_ALERT_CHAT_ID"
    assert placeholder in ALERTMANAGER_CONFIG.read_text() and placeholder in compose["command"][0]
    copy = ALERTMANAGER_CONFIG.read_text().replace(
        "bot_token_file: /run/secrets/telegram_bot_token", 'bot_token: "123:not-a-token"'
    )
    (tmp_path / "alertmanager.yml").write_text(copy)
    done = run(need_amtool(), "check-config", str(tmp_path / "alertmanager.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    (tmp_path / "bad.yml").write_text(copy.replace("telegram_configs", "telegram_cfg"))
    assert run(need_amtool(), "check-config", str(tmp_path / "bad.yml")).returncode != 0


def need_amtool() -> str:
    from tests.ops.conftest import need

    return need("amtool")
