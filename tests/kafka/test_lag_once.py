"""The consumer lag is one figure for the whole worker group: with two workers on the real broker,
each reports the group's backlog, and the dashboard's "Consumer lag" query, evaluated by a real
Prometheus that scrapes both, gives the backlog, not twice it (the old ``sum()`` did). It comes
down to 0 once the queue drains, while the workers sit idle."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.embedded.generator import FakeGenerator
from adapters.embedded.storage import LocalFolderStorage
from adapters.http.server import HttpEndpoint
from adapters.otel.metrics import OtelMetrics
from domain.models import GeneratedImage, GenerationRequest
from domain.ports import ProgressCallback
from domain.use_cases import ProcessJobs
from domain.use_cases.backlog import WatchBacklog
from tests.kafka.pipeline import eventually, make_job
from tests.telegram.conftest import free_port

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
# One copy, in the chart (compose mounts the same file).
DASHBOARDS = [ROOT / "deploy" / "helm" / "prompt2pic" / "dashboards" / "prompt2pic.json"]


class Gate(FakeGenerator):
    """The fake generator, held until the test opens the gate: the jobs stay owed meanwhile."""

    def __init__(self) -> None:
        super().__init__(max_batch=1)
        self.gate = asyncio.Event()

    async def generate(
        self, requests: list[GenerationRequest], on_step: ProgressCallback | None = None
    ) -> list[GeneratedImage]:
        await self.gate.wait()
        return await super().generate(requests, on_step)


def lag_queries() -> set[str]:
    """The expression of the dashboard's "Consumer lag" stat."""
    found = set()
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            if panel.get("title", "").startswith("Consumer lag (requests waiting)"):
                found |= {t["expr"] for t in panel["targets"]}
    return found


@contextlib.asynccontextmanager
async def prometheus(tmp_path: Path, targets: list[str]) -> AsyncIterator[str]:
    """A real Prometheus (Debian's package) scraping ``targets`` every second as the compose
    scrape config's worker job; yields its base URL."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is not installed (Debian: apt-get install prometheus)"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [{"job_name": "prompt2pic-worker", "static_configs": [{"targets": targets}]}],
            }
        )
    )
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def query(base: str, expr: str) -> list[float]:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/query", params={"query": expr}) as r:
            body: dict[str, Any] = await r.json()
    except aiohttp.ClientError:
        return []  # not listening yet
    return [float(item["value"][1]) for item in body["data"]["result"]]


async def test_two_workers_report_the_backlog_once(harness, tmp_path):
    [expr] = lag_queries()  # the dashboard's (compose's and the chart's: one file)
    workers, endpoints, watches, stop = [], [], [], asyncio.Event()
    generators = []
    for name in ("w1", "w2"):
        queue = await harness.new_queue(client_id=name)
        storage = LocalFolderStorage(tmp_path / "images")
        await storage.start()
        metrics = OtelMetrics(system_metrics=False)
        generator = Gate()
        generators.append(generator)
        worker = ProcessJobs(
            queue, generator, storage, worker_id=name, max_batch=1, poll_timeout_s=0.2, metrics=metrics
        )
        watch = WatchBacklog(queue, metrics, every_s=0.2)
        endpoint = HttpEndpoint("127.0.0.1", 0, metrics=metrics.prometheus)
        await endpoint.start()
        endpoints.append(endpoint)
        workers.append(asyncio.create_task(worker.run(stop)))
        watches.append(asyncio.create_task(watch.run(stop)))
    publisher = await harness.new_queue(client_id="publisher")
    try:
        for n in range(6):
            await publisher.publish_job(make_job(n))
        targets = [f"127.0.0.1:{e.port}" for e in endpoints]
        async with prometheus(tmp_path, targets) as base:

            async def reported(value: float) -> bool:
                per_process = await query(base, "p2p_consumer_lag")
                return per_process == [value, value] and await query(base, expr) == [value]

            # Six jobs owed (the workers hold some, uncommitted): each process says 6, the panel 6.
            await eventually(reported_as(reported, 6.0), 60, "both workers and the panel to say 6")
            assert await publisher.lag.refresh() == 6  # measured now, not cached
            assert await query(base, "sum(p2p_consumer_lag)") == [12.0]  # what the old panel showed

            for generator in generators:
                generator.gate.set()
            # Drained: the idle workers bring it down to 0 within seconds.
            await eventually(reported_as(reported, 0.0), 60, "the lag to come down to 0")
            assert await publisher.lag.refresh() == 0
    finally:
        stop.set()
        for generator in generators:
            generator.gate.set()
        await asyncio.wait([*workers, *watches], timeout=30)
        for endpoint in endpoints:
            await endpoint.stop()


def reported_as(check: Any, value: float) -> Any:
    async def at() -> bool:
        return bool(await check(value))

    return at
