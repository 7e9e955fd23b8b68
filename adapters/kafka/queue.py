"""The job queue on Apache Kafka (aiokafka): the real adapter of the ``JobQueue`` port.

Topics (names configurable, created with the admin client when missing):

- requests: jobs from the bots, consumed by the worker group (``worker_group``): each job goes to
  one worker, partitions are shared out among the workers of the group; one topic per lane (the
  requests topic is the priority lane's, ``<requests>.relaxed`` the relaxed lane's: ``lanes``),
  read by one consumer that hands out priority first with the relaxed lane's guaranteed share;
- results: progress events and results, keyed by chat id and consumed by the bot group
  (``bot_group``): one chat's events reach one bot instance, in order (its live status and
  pacing stay there; ``delivers_events_of`` says which chats are this instance's), and the
  delivery log keeps a result from being sent twice;
- dead letters: what could not be decoded, with the reason in the ``p2p-reason`` header. The
  consumer goes on past it.

Delivery semantics (the same contract as the embedded adapter): a job is acked by the worker
only after its result is published, and only the contiguous acked prefix of a partition is
committed, so no job is lost when a worker dies or loses a partition. Each delivery carries its
attempt, counted across crashes in the offset-commit metadata: the worker (``ProcessJobs``) fails
a job delivered too many times (a poison prompt that kills every worker that takes it).

The parts: ``config`` (settings), ``consumer`` (one group on one topic), ``offsets`` (what may be
committed, and the delivery counts), ``commits``, ``deliveries``, ``producer``, ``dead_letters``,
``admin`` (topics, group offsets), ``lag`` (the backlog) and ``health`` (readiness).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    wait_exponential,
)

from adapters.kafka.admin import KafkaAdmin
from adapters.kafka.config import KafkaConfig
from adapters.kafka.consumer import GroupConsumer
from adapters.kafka.dead_letters import REASON_HEADER
from adapters.kafka.deliveries import KafkaDelivery
from adapters.kafka.errors import describe
from adapters.kafka.health import Health
from adapters.kafka.lag import Backlog
from adapters.kafka.producer import Producer, ResultConfirmations, log_failed_send
from adapters.kafka.security import LoginRefused, quiet_aiokafka_refusals, why_refused
from domain.codec import decode_event, decode_request, encode_cancel, encode_event, encode_job
from domain.models import Cancel, Event, Job, Lane, Result

__all__ = ["REASON_HEADER", "KafkaConfig", "KafkaDelivery", "KafkaJobQueue"]

log = logging.getLogger(__name__)
_PARTITIONER = DefaultPartitioner()  # the producer's, for keyed messages


class KafkaJobQueue:
    """The ``JobQueue`` port on Apache Kafka. Consumers are made on first use: a bot never joins
    the worker group, a worker never joins the bot group. Options: the fields of ``KafkaConfig``."""

    def __init__(self, bootstrap_servers: str, **options: Any) -> None:
        self.config = c = KafkaConfig(bootstrap_servers, **options)
        # TLS and SASL for every client this queue makes (one SSL context, made once).
        self.security = c.security
        self.client_options = c.security.client_options()
        if c.security.sasl or c.security.tls:
            quiet_aiokafka_refusals()
        self._refusal_told: str | None = None
        self.health = Health()
        self.admin = KafkaAdmin(c, self.client_options)
        self.producer = Producer(c, self.client_options, self.health)
        self.confirmations = ResultConfirmations(self.health)
        self.lag = Backlog(c, self.client_options, self.admin)
        self._jobs: GroupConsumer | None = None
        self._events: GroupConsumer | None = None
        self._monitor: asyncio.Task[None] | None = None
        # Told of each dead letter sent (its source topic): the composition root counts them.
        self.on_dead_letter: Callable[[str], None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self.health.started:
            return
        c = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + c.start_timeout_s

        async def attempt() -> None:
            try:
                await self.admin.start()
                self.lag.partitions = await self.admin.ensure_topics()
                await self.producer.start()
            except Exception:
                await self._close_clients()
                refused = await why_refused(c.bootstrap_servers, c.security)
                if refused is not None:
                    # A wrong password or certificate: one clear line (again only if it changes);
                    # readiness stays false and the app tries again, slowly.
                    if refused != self._refusal_told:
                        log.error("%s", refused)
                        self._refusal_told = refused
                    raise LoginRefused(refused) from None
                raise

        def retrying(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            why = describe(exc) if exc is not None else ""
            log.warning("Kafka at %s not reachable yet (%s); retrying", c.bootstrap_servers, why)

        connecting = AsyncRetrying(
            # Not past the deadline: the last try is the one whose pause would go beyond it.
            stop=lambda state: loop.time() + state.upcoming_sleep > deadline,
            wait=wait_exponential(multiplier=0.2, max=3.0),  # 0.2, 0.4, 0.8, 1.6, 3 s, ...
            retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(LoginRefused),
            before_sleep=retrying,
            reraise=True,
        )
        await connecting(attempt)
        self.health.up()
        self._refusal_told = None
        self._monitor = asyncio.create_task(
            self.health.watch(lambda: self.admin.describe_topics([c.requests_topic]), c.health_interval_s),
            name="kafka-health",
        )
        log.info(
            "Kafka queue ready on %s, %s (%s -> %s)",
            c.bootstrap_servers,
            c.security.describe(),
            c.requests_topic,
            c.results_topic,
        )

    async def stop(self, commit: bool = True) -> None:
        """Leave the groups (committing what is acked unless ``commit=False``), flush the
        producer, close the clients. Unacked deliveries are delivered again, elsewhere."""
        self.health.down()
        if self._monitor:
            self._monitor.cancel()
            await asyncio.wait({self._monitor})
            self._monitor = None
        await self.lag.stop_refreshing()
        pending = self.confirmations.pending()
        if commit and pending:
            # Let the results on their way arrive, so that their jobs can be committed.
            _, late = await asyncio.wait(pending, timeout=self.config.stop_timeout_s)
            await asyncio.sleep(0)  # run the confirmation callbacks
            if late:
                log.warning("%d result(s) not confirmed on stop: their jobs will come again", len(late))
        for stream in (self._jobs, self._events):
            if stream is not None:
                await stream.close(commit=commit)
        self._jobs = self._events = None
        await self._close_clients()

    async def abort(self) -> None:
        """Close as a killed process would: nothing more is committed (what was acked but not
        committed yet is delivered again). Used by the tests' ``crash``."""
        await self.stop(commit=False)

    async def _close_clients(self) -> None:
        for closer in (self.producer.stop, self.lag.close, self.admin.close):
            try:
                async with asyncio.timeout(self.config.stop_timeout_s):
                    await closer()
            except Exception as exc:
                log.warning("closing a Kafka client: %s", describe(exc))

    def is_ready(self) -> bool:
        return self.health.is_ready()

    # ------------------------------------------------------------------ publishing
    async def publish_job(self, job: Job) -> None:
        # Key: the job id. Jobs need no order among themselves, so a random-looking key spreads
        # them evenly over the partitions and so over every worker of the group; a user or chat
        # id would pin one busy user's jobs to one partition (one worker) and leave others idle.
        topic = self.config.lane_topics[job.lane]
        await self.producer.send(topic, encode_job(job), job.job_id.encode(), wait=True)

    async def publish_cancel(self, cancel: Cancel) -> None:
        # Key: the job id, as the job's own: the cancellation lands on the job's partition, behind
        # the job, so it reaches the worker that holds (or will take) the job; in the job's lane.
        topic = self.config.lane_topics[cancel.lane]
        await self.producer.send(topic, encode_cancel(cancel), cancel.job_id.encode(), wait=True)

    async def publish_event(self, event: Event) -> None:
        # Key: the chat id. One chat's progress events and results land on one partition, so one
        # bot instance of the group gets them all, in order (never "generating 40%" after the
        # picture; its per-chat pacing and status edits stay in one place). A chat has few jobs at
        # once (the per-user cap), so chats spread over the partitions well.
        c, key = self.config, str(event.chat_id).encode()
        if isinstance(event, Result) and not c.pipeline_results:
            await self.producer.send(c.results_topic, encode_event(event), key, wait=True)
        elif isinstance(event, Result):
            # Pipelined: queued now, confirmed in the background; the job's ack holds its commit
            # until the broker has the result (see ``ResultConfirmations``). A worker then sends
            # a whole batch's results in one request instead of one round trip per job.
            future = await self.producer.send(c.results_topic, encode_event(event), key, wait=False)
            assert future is not None
            self.confirmations.track(event.job_id, future)
        else:  # progress is best effort: queued for sending, not waited for
            future = await self.producer.send(
                c.results_topic, encode_event(event), key, wait=False, timeout=c.progress_timeout_s, trace=False
            )
            assert future is not None
            future.add_done_callback(log_failed_send)

    async def _send_dead_letter(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        await self.producer.send(self.config.dead_letter_topic, value or b"", key, wait=True, headers=headers)
        if self.on_dead_letter is not None:
            self.on_dead_letter(dict(headers).get("p2p-source-topic", b"").decode(errors="replace"))

    # ------------------------------------------------------------------ consuming
    def _consumer(self, role: str) -> GroupConsumer:
        if not self.health.started:
            raise KafkaError("the queue is not started")
        c = self.config
        common: dict[str, Any] = {
            "health": self.health,
            "admin": self.admin,
            "send_dead_letter": self._send_dead_letter,
        }
        if role == "jobs":
            if self._jobs is None:
                self._jobs = GroupConsumer(
                    c,
                    self.client_options,
                    role="worker",
                    topic=c.requests_topic,
                    group=c.worker_group,
                    decode=decode_request,
                    confirmations=self.confirmations,
                    counts_deliveries=c.counts_deliveries,
                    group_instance_id=c.group_instance_id,
                    lanes=c.lane_topics,
                    relaxed_every=c.relaxed_every,
                    **common,
                )
            return self._jobs
        if self._events is None:
            # Results are not counted out: a bot that cannot reach Telegram releases them until it can.
            self._events = GroupConsumer(
                c,
                self.client_options,
                role="bot",
                topic=c.results_topic,
                group=c.bot_group,
                decode=decode_event,
                group_instance_id=None if c.group_instance_id is None else f"{c.group_instance_id}-bot",
                **common,
            )
        return self._events

    async def receive_jobs(self, max_jobs: int, timeout: float) -> list[KafkaDelivery[Job | Cancel]]:
        return await self._consumer("jobs").receive(max_jobs, timeout)

    async def receive_events(self, max_events: int, timeout: float) -> list[KafkaDelivery[Event]]:
        return await self._consumer("events").receive(max_events, timeout)

    async def backlog(self) -> int:
        """Consumer lag of the worker group on the requests topics, best effort (see ``Backlog``)."""
        return await self.lag.value()

    async def backlogs(self) -> dict[Lane, int]:
        """The lag lane by lane (each lane's topic)."""
        by_topic = await self.lag.values()
        return {lane: by_topic.get(topic, 0) for lane, topic in self.config.lane_topics.items()}

    def delivers_events_of(self, chat_id: int) -> bool:
        """Events are keyed by chat id, so a chat's partition is the producer's choice for that
        key (the default partitioner: murmur2 of the key); true while this bot holds it, or
        while it has not joined its group yet (then nobody else is known to hold it)."""
        consumer = self._events.consumer if self._events is not None else None
        if consumer is None:
            return True
        held = self.event_partitions()
        partitions = consumer.partitions_for_topic(self.config.results_topic)
        if not held or not partitions:
            return True
        everyone = sorted(partitions)
        return _PARTITIONER(str(chat_id).encode(), everyone, everyone) in held

    # ------------------------------------------------------------------ test and operations hooks
    def worker_partitions(self) -> set[int]:
        """The requests-topic partitions this queue's worker consumer holds now (empty before it
        has joined the group)."""
        return set() if self._jobs is None else self._jobs.assignment()

    def event_partitions(self) -> set[int]:
        """The results-topic partitions this queue's bot consumer holds now (empty before it
        has joined the group)."""
        return set() if self._events is None else self._events.assignment()

    async def publish_raw_job(self, raw: bytes, key: bytes | None = None, lane: Lane = Lane.PRIORITY) -> None:
        await self.producer.send(self.config.lane_topics[lane], raw, key, wait=True)

    async def publish_raw_event(self, raw: bytes, key: bytes | None = None) -> None:
        await self.producer.send(self.config.results_topic, raw, key, wait=True)
