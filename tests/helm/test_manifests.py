"""Properties of the rendered manifests, checked against the program rather than against lists
kept here: the image's uid from the Dockerfile, probe paths from the app's HTTP routes, the
shutdown grace from the rendered SHUTDOWN_GRACE_S, the partitions from KAFKA_PARTITIONS."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from adapters.http.server import HttpEndpoint
from tests.helm.conftest import VALUE_SETS, Helm, container_env

# The first test may wait for the one-off build of helm (a few minutes on two cores).
pytestmark = pytest.mark.timeout(1800)

ROOT = Path(__file__).resolve().parents[2]
WRITABLE = {"/app/data", "/cache", "/tmp"}
WORKER_VALUES = {"worker-cpu": "cpuWorker", "worker-gpu": "gpuWorker"}


def image_uid() -> int:
    match = re.search(r"^ARG APP_UID=(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert match, "the Dockerfile declares ARG APP_UID=<uid>"
    return int(match.group(1))


def served_get_paths() -> set[str]:
    """GET routes of the app's HTTP endpoint, as aiohttp registers them."""
    endpoint = HttpEndpoint("127.0.0.1", 0)
    return {
        route.resource.canonical
        for route in endpoint.app.router.routes()
        if route.method == "GET" and route.resource is not None
    }


def component(workload: dict) -> str:
    return workload["metadata"]["labels"]["app.kubernetes.io/component"]


def test_pods_run_as_the_images_non_root_user(rendered):
    uid = image_uid()
    assert rendered.pod_specs()
    for _workload, spec in rendered.pod_specs():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid and pod["runAsGroup"] == uid
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False, "Service variables would add env names that are no setting"
    for _workload, container in rendered.containers():
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == uid
        assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_root_filesystem_is_read_only_with_writable_volumes(rendered):
    for _workload, spec in rendered.pod_specs():
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert set(mounts) >= WRITABLE, f"{container['name']} lacks {WRITABLE - set(mounts)}"
            for path in WRITABLE:
                volume = volumes[mounts[path]["name"]]
                assert not mounts[path].get("readOnly")
                assert {"emptyDir", "persistentVolumeClaim", "ephemeral"} & set(volume), volume


def test_every_container_has_requests_and_limits(rendered):
    for workload, container in rendered.containers():
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{container['name']}: {kind}"
        if component(workload) == "worker-gpu":
            assert resources["limits"]["nvidia.com/gpu"] >= 1
            assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
        else:
            assert "nvidia.com/gpu" not in resources["limits"]


def test_probes_use_paths_the_app_serves_on_its_port(rendered):
    served = served_get_paths()
    assert {"/healthz", "/readyz"} <= served  # what the app registers today
    for workload, container in rendered.containers():
        env = container_env(container)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["http"] == int(env["HTTP_PORT"]["value"])
        probes = {k: container[k] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
        for kind, probe in probes.items():
            assert probe["httpGet"]["path"] in served, f"{kind} {probe['httpGet']['path']} is not served"
            assert probe["httpGet"]["port"] == "http"
        assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
        startup = probes["startupProbe"]
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        values = rendered.values[WORKER_VALUES.get(component(workload), "bot")]
        assert budget >= values["startupSeconds"], "the startup probe gives up before the model is loaded"


def test_grace_period_covers_the_shutdown_grace_and_the_longest_batch(rendered):
    workers = [(w, s) for w, s in rendered.pod_specs() if component(w) in WORKER_VALUES]
    assert workers
    for workload, spec in workers:
        values = rendered.values[WORKER_VALUES[component(workload)]]
        env = container_env(spec["containers"][0])
        grace = float(env["SHUTDOWN_GRACE_S"]["value"])
        longest = values["longestBatchSeconds"]
        assert spec["terminationGracePeriodSeconds"] > grace + longest
        assert grace >= longest, "the worker would cut its batch short on SIGTERM"
        assert int(env["KAFKA_MAX_POLL_INTERVAL_MS"]["value"]) > longest * 1000
    for _workload, spec in rendered.pod_specs():
        env = container_env(spec["containers"][0])
        assert spec["terminationGracePeriodSeconds"] > float(env["SHUTDOWN_GRACE_S"]["value"])


def test_workers_scale_on_their_groups_lag_within_the_partitions(rendered):
    deployments = {d["metadata"]["name"]: d for d in rendered.kinds("Deployment")}
    total = 0
    for so in rendered.kinds("ScaledObject"):
        target = deployments[so["spec"]["scaleTargetRef"]["name"]]
        env = container_env(target["spec"]["template"]["spec"]["containers"][0])
        requests = env["KAFKA_REQUESTS_TOPIC"]["value"]
        # one trigger per lane: the requests topic and the relaxed lane's beside it
        assert [t["metadata"]["topic"] for t in so["spec"]["triggers"]] == [requests, requests + ".relaxed"]
        for trigger in so["spec"]["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "kafka"
            assert meta["consumerGroup"] == env["KAFKA_WORKER_GROUP"]["value"]
            assert meta["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]["value"]
            assert 1 <= int(meta["lagThreshold"]) <= 2, "about 1-2 waiting jobs per replica"
            assert meta["allowIdleConsumers"] == "false"
        partitions = int(env["KAFKA_PARTITIONS"]["value"])
        assert so["spec"]["maxReplicaCount"] <= partitions
        total += so["spec"]["maxReplicaCount"]
        assert total <= partitions, "all worker groups together stay within the partitions"
        assert so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["policies"]


def test_keda_reads_lag_as_the_workers_do():
    """offsetResetPolicy must match the consumer's auto_offset_reset, or a new group's lag is wrong."""
    source = "\n".join(p.read_text() for p in sorted((ROOT / "adapters" / "kafka").glob("*.py")))
    match = re.search(r'auto_offset_reset="(\w+)"', source)
    assert match
    chart = (ROOT / "deploy" / "helm" / "prompt2pic" / "templates" / "worker-scaledobject.yaml").read_text()
    assert f"offsetResetPolicy: {match.group(1)}" in chart


def test_scale_to_zero_and_sasl(helm: Helm):
    zero = helm.template(VALUE_SETS["gpu-scale-to-zero"])
    (so,) = zero.kinds("ScaledObject")
    assert so["spec"]["minReplicaCount"] == 0 and so["spec"]["triggers"][0]["metadata"]["activationLagThreshold"] == "0"
    cloud = helm.template(VALUE_SETS["cloudru"])
    (so,) = cloud.kinds("ScaledObject")
    meta = so["spec"]["triggers"][0]["metadata"]
    assert meta["sasl"] == "scram_sha512" and meta["bootstrapServers"].endswith(":9094")
    (auth,) = cloud.kinds("TriggerAuthentication")
    assert so["spec"]["triggers"][0]["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"username", "password"}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["cpuWorker.autoscaling.maxReplicaCount=13"],
            "cpuWorker.autoscaling.maxReplicaCount (13) is above the requests topic's partitions",
        ),
        (["kafka.partitions=3"], "maxReplicaCount (4) is above the requests topic's partitions (kafka.partitions: 3)"),
        (
            [
                "gpuWorker.enabled=true",
                "cpuWorker.autoscaling.maxReplicaCount=8",
                "gpuWorker.autoscaling.maxReplicaCount=8",
            ],
            "together may reach 16 replicas, above the requests topic's 12 partitions",
        ),
        (
            ["cpuWorker.autoscaling.enabled=false", "cpuWorker.replicas=20"],
            "cpuWorker.replicas (20) is above the requests topic's partitions",
        ),
        (["cpuWorker.shutdownGraceSeconds=60"], "cuts its batch short on SIGTERM"),
        (["cpuWorker.maxPollIntervalMs=300000"], "Kafka drops a worker that does not poll within it"),
        (["cpuWorker.autoscaling.lagThreshold=0"], "lagThreshold must be 1 or more"),
    ],
)
def test_the_chart_refuses_to_render(helm: Helm, sets, message):
    assert message in helm.refusal(sets=sets)


def test_as_many_replicas_as_partitions_is_allowed(helm: Helm):
    rendered = helm.template(sets=["cpuWorker.autoscaling.maxReplicaCount=12"])
    assert rendered.kinds("ScaledObject")[0]["spec"]["maxReplicaCount"] == 12


def test_images_come_from_values(helm: Helm):
    default = helm.template()
    app_version = re.search(r'^appVersion: "(.+)"$', (ROOT / "deploy/helm/prompt2pic/Chart.yaml").read_text(), re.M)[1]
    images = {component(w): c["image"] for w, c in default.containers()}
    assert images == {"bot": f"prompt2pic-bot:{app_version}", "worker-cpu": f"prompt2pic-worker-cpu:{app_version}"}
    custom = helm.template(
        sets=[
            "image.registry=reg.example.ru/team/",
            "image.tag=1.2.3",
            "gpuWorker.enabled=true",
            "gpuWorker.image.tag=1.2.3-cu128",
            "bot.image.repository=my-bot",
            "image.pullSecrets={pull-a}",
        ]
    )
    images = {component(w): c["image"] for w, c in custom.containers()}
    assert images == {
        "bot": "reg.example.ru/team/my-bot:1.2.3",
        "worker-cpu": "reg.example.ru/team/prompt2pic-worker-cpu:1.2.3",
        "worker-gpu": "reg.example.ru/team/prompt2pic-worker-cuda:1.2.3-cu128",
    }
    for _, spec in custom.pod_specs():
        assert spec["imagePullSecrets"] == [{"name": "pull-a"}]


def test_the_webhook_is_the_only_public_route(rendered):
    bot = rendered.one("Deployment", "-bot")
    env = container_env(bot["spec"]["template"]["spec"]["containers"][0])
    assert env["TELEGRAM_MODE"]["value"] == "webhook"
    (ingress,) = rendered.kinds("Ingress")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["pathType"] == "Exact" and path["path"] == env["TELEGRAM_WEBHOOK_PATH"]["value"]
    assert env["TELEGRAM_WEBHOOK_URL"]["value"] == f"https://{rule['host']}{path['path']}"
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    assert "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
    assert path["path"] not in served_get_paths()  # the probes and /metrics are not published
    if rendered.values["database"]["passToApp"]:  # shared state: several bots under the HPA
        hpa = rendered.one("HorizontalPodAutoscaler", "-bot")
        assert hpa["spec"]["scaleTargetRef"]["name"] == bot["metadata"]["name"] and hpa["spec"]["minReplicas"] >= 2
    else:  # each bot's SQLite is its own: exactly one bot
        assert not rendered.kinds("HorizontalPodAutoscaler") and bot["spec"]["replicas"] == 1


def test_network_policies_fence_the_pods(rendered):
    policies = {p["metadata"]["name"].rsplit("-", 1)[-1]: p["spec"] for p in rendered.kinds("NetworkPolicy")}
    assert set(policies) == {"bot", "workers"}
    bot_in = policies["bot"]["ingress"]
    assert any("from" in rule and rule["ports"] == [{"protocol": "TCP", "port": "http"}] for rule in bot_in)
    (worker_in,) = policies["workers"]["ingress"]  # Prometheus only
    assert worker_in["from"] == rendered.values["networkPolicy"]["metricsFrom"]
    allowed = {
        53,
        *rendered.values["networkPolicy"]["kafka"]["ports"],
        *rendered.values["networkPolicy"]["s3"]["ports"],
    }
    assert {p["port"] for rule in policies["workers"]["egress"] for p in rule["ports"]} == allowed
    selector = policies["workers"]["podSelector"]["matchLabels"]
    for workload, _ in rendered.pod_specs():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        is_worker = all(labels.get(k) == v for k, v in selector.items())
        assert is_worker == (component(workload) in WORKER_VALUES)


def test_disruption_budgets_cover_every_deployment(rendered):
    budgets = rendered.kinds("PodDisruptionBudget")
    for workload, _ in rendered.pod_specs():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items())
        ]
        assert len(matching) == 1, workload["metadata"]["name"]


def test_model_cache_is_shared_or_per_pod(helm: Helm):
    shared = helm.template(VALUE_SETS["gpu"])
    (claim,) = shared.kinds("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for workload, spec in shared.pod_specs():
        if component(workload) in WORKER_VALUES:
            (cache,) = [v for v in spec["volumes"] if v["name"] == "cache"]
            assert cache["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    per_pod = helm.template(VALUE_SETS["cloudru"])
    assert not per_pod.kinds("PersistentVolumeClaim")
    (spec,) = [s for w, s in per_pod.pod_specs() if component(w) == "worker-gpu"]
    (cache,) = [v for v in spec["volumes"] if v["name"] == "cache"]
    assert cache["ephemeral"]["volumeClaimTemplate"]["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_gpu_workers_land_on_gpu_nodes(helm: Helm):
    rendered = helm.template(VALUE_SETS["gpu"])
    workload, spec = next((w, s) for w, s in rendered.pod_specs() if component(w) == "worker-gpu")
    # A rollout never asks for a GPU beyond the running pods' (quota).
    assert workload["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    assert spec["nodeSelector"] == rendered.values["gpuWorker"]["nodeSelector"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    env = container_env(spec["containers"][0])
    assert env["GENERATOR_DEVICE"]["value"] == "cuda"
    assert not [w for w, _ in rendered.pod_specs() if component(w) == "worker-cpu"]


def test_dashboard_and_service_monitor(helm: Helm):
    original = ROOT / "deploy/helm/prompt2pic/dashboards/prompt2pic.json"  # the one copy (compose mounts it)
    rendered = helm.template(VALUE_SETS["gpu"], ["serviceMonitor.enabled=true"])
    (dashboard,) = rendered.kinds("ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["prompt2pic.json"] == original.read_text().rstrip("\n")
    (monitor,) = rendered.kinds("ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] in served_get_paths() and endpoint["path"] == "/metrics"
    wanted = set(monitor["spec"]["selector"]["matchExpressions"][0]["values"])
    services = {component(s): s for s in rendered.kinds("Service")}
    deployments = {component(w) for w, _ in rendered.pod_specs()}
    assert deployments <= wanted and deployments <= set(services)
    for name in deployments:
        assert endpoint["port"] in {p["name"] for p in services[name]["spec"]["ports"]}


def test_startup_budget_rounds_up(helm: Helm):
    rendered = helm.template(sets=["bot.startupSeconds=95"])
    bot = rendered.one("Deployment", "-bot")["spec"]["template"]["spec"]["containers"][0]
    assert bot["startupProbe"]["failureThreshold"] == math.ceil(95 / bot["startupProbe"]["periodSeconds"])
