"""Throwaway topic and group names for a benchmark's run on a real broker, so two runs (or a run
and a test) on the same broker never share a topic or a consumer group."""

from __future__ import annotations

import uuid


def throwaway_names(prefix: str, partitions: int = 4) -> dict[str, str | int]:
    """``KafkaJobQueue`` keyword arguments: requests, results and dead-letter topics, the worker and
    bot groups, all under ``prefix`` and a random suffix, and the partitions of each topic."""
    suffix = uuid.uuid4().hex[:8]
    return dict(
        requests_topic=f"{prefix}.req.{suffix}",
        results_topic=f"{prefix}.res.{suffix}",
        dead_letter_topic=f"{prefix}.dlq.{suffix}",
        worker_group=f"{prefix}.w.{suffix}",
        bot_group=f"{prefix}.b.{suffix}",
        partitions=partitions,
    )
