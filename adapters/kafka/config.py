"""The settings of one Kafka job queue: topics, groups, timeouts and tuning, in one dataclass.

Tuning (measured with ``bench/queue_bench.py``; figures in docs/benchmarks.md):

- ``fetch_max_wait_ms``: aiokafka keeps one fetch in flight per broker, and a partition whose
  data was just fetched waits out that long poll before it is fetched again. A job's progress
  and result share a partition, so the result of a fast job can wait up to this long at the
  bot: a trade of latency for idle CPU (polling).
- ``linger_ms``: 0. Batches form anyway while a request is in flight.
- ``pipeline_results``: results are sent without waiting for the broker, and the job's ack
  counts only once the broker has confirmed the result (else the job comes again). A worker then
  sends a batch's results in one request instead of one round trip each.
- ``commit_interval_ms``: commits are coalesced in the background (a crash in the window only
  means work done again, which is idempotent by job id).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.kafka.lanes import lane_topics, relaxed_topic
from adapters.kafka.security import KafkaSecurity
from domain.models import Lane


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str
    requests_topic: str = "p2p.requests"
    results_topic: str = "p2p.results"
    dead_letter_topic: str = "p2p.dead-letters"
    partitions: int = 12
    replication_factor: int = 1
    worker_group: str = "p2p-workers"
    bot_group: str = "p2p-bots"
    max_poll_interval_ms: int = 900_000
    session_timeout_ms: int = 10_000
    # The poison-job limit is the worker's (``ProcessJobs.max_deliveries``, KAFKA_MAX_DELIVERIES):
    # this queue only counts deliveries (``Delivery.attempt``, kept across crashes in the commit
    # metadata). Accepted here for callers that still pass it; 0 or None: the counts are not
    # committed as soon as a job is handed out (only with the next commit).
    max_deliveries: int | None = 5
    client_id: str = "prompt2pic"
    group_instance_id: str | None = None
    heartbeat_interval_ms: int | None = None  # default: a fifth of the session timeout (0.1-3 s)
    fetch_max_wait_ms: int = 100
    linger_ms: int = 0
    request_timeout_ms: int = 30_000
    publish_timeout_s: float = 15.0
    progress_timeout_s: float = 2.0
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 15.0
    health_interval_s: float = 1.0
    backlog_cache_s: float = 1.0
    dead_letter_partitions: int = 1
    prefetch: int = 32
    commit_interval_ms: int = 100
    pipeline_results: bool = True
    # At least one in this many jobs a worker takes is relaxed while relaxed jobs wait
    # (LANES_RELAXED_EVERY; ``adapters.kafka.lanes``).
    relaxed_every: int = 4
    security: KafkaSecurity = field(default_factory=KafkaSecurity)

    def __post_init__(self) -> None:
        if self.security is None:  # callers pass ``security=None`` for "none"
            object.__setattr__(self, "security", KafkaSecurity())

    @property
    def heartbeat_ms(self) -> int:
        return self.heartbeat_interval_ms or max(100, min(3000, self.session_timeout_ms // 5))

    @property
    def counts_deliveries(self) -> bool:
        return bool(self.max_deliveries)

    @property
    def relaxed_topic(self) -> str:
        """The relaxed lane's topic: the requests topic with ``.relaxed`` after it."""
        return relaxed_topic(self.requests_topic)

    @property
    def lane_topics(self) -> dict[Lane, str]:
        return lane_topics(self.requests_topic)

    @property
    def topics(self) -> dict[str, int]:
        """The topics this queue uses, with the partitions it creates them with."""
        return {
            self.requests_topic: self.partitions,
            self.relaxed_topic: self.partitions,
            self.results_topic: self.partitions,
            self.dead_letter_topic: self.dead_letter_partitions,
        }
