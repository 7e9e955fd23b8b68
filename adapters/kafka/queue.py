"""The job queue on Apache Kafka (aiokafka): the real adapter of the ``JobQueue`` port.

Topics (names configurable, created with the admin client when missing):

- requests: jobs from the bots, consumed by the worker group (``worker_group``): each job goes to
  one worker, partitions are shared out among the workers of the group;
- results: progress events and results, consumed by the bot group (``bot_group``): any bot
  instance may deliver any result (Telegram does not care which process sends), and the bot
  deduplicates results by job id;
- dead letters: what could not be decoded, or a job delivered ``max_deliveries`` times without
  being acked, with the reason in the ``p2p-reason`` header. The consumer goes on past it.

Delivery semantics (the same contract as the in-memory adapter): offsets are committed by hand
only (``enable_auto_commit=False``), and only up to the first message of a partition that is not
finished yet (the contiguous acked prefix). A job is acked by the worker only after its result is
published, so a worker that dies or loses a partition never loses a job: the group's next owner
of the partition gets it again. Redelivered work is safe because every step is idempotent by
job id (image key, result deduplication).

Delivery counts survive crashes: the commit of a partition carries, in its offset metadata, how
many times each unfinished message at the commit point has been handed out. A job that kills
every worker that takes it (a poison prompt) is counted across processes and set aside after
``max_deliveries`` attempts instead of crashing the group forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    ConsumerStoppedError,
    IllegalStateError,
    KafkaError,
    TopicAlreadyExistsError,
)

try:  # trace context travels in the message headers when OpenTelemetry is installed
    from opentelemetry import propagate as _propagate
except ImportError:  # pragma: no cover - the bot-only install has it too; tolerate its absence
    _propagate = None

from adapters.kafka.leave import leave_as_static_member
from domain.codec import (
    UndecodableMessage,
    decode_event,
    decode_request,
    encode_cancel,
    encode_event,
    encode_job,
)
from domain.models import Cancel, ErrorCode, Event, Job, Result

log = logging.getLogger(__name__)
T = TypeVar("T")

REASON_HEADER = "p2p-reason"
TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
_IN_FLIGHT, _WAITING, _CONFIRMING, _DONE = "in-flight", "waiting", "confirming", "done"
_DEAD_LETTERING = "dead-lettering"
_METADATA_PREFIX = "p2p1:"  # versioned offset-commit metadata: "p2p1:<rel>=<attempts>,..."
_METADATA_MAX = 3000  # the broker's offset.metadata.max.bytes defaults to 4096


# --------------------------------------------------------------------------- deliveries


class _Record:
    """One message of a partition this consumer has taken and not finished."""

    __slots__ = ("attempts", "current", "headers", "key", "message", "offset", "part", "state", "value")

    def __init__(self, part: _Partition, offset: int, key: bytes | None, value: bytes | None,
                 headers: Any, attempts: int) -> None:
        self.part = part
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = list(headers or ())
        self.attempts = attempts
        self.state = _IN_FLIGHT
        self.message: Any = None
        self.current: KafkaDelivery[Any] | None = None


class KafkaDelivery(Generic[T]):
    """A message handed to a consumer. ``ack`` after the work is durable; ``release`` to have it
    delivered again. After its partition was revoked (rebalance) both are no-ops: the partition's
    new owner gets the message again."""

    __slots__ = ("_message", "_record", "_stream", "attempt", "settled")

    def __init__(self, message: T, record: _Record, stream: _Stream, attempt: int) -> None:
        self._message = message
        self._record = record
        self._stream = stream
        self.attempt = attempt
        self.settled = False

    @property
    def message(self) -> T:
        return self._message

    @property
    def topic(self) -> str:
        return self._record.part.tp.topic

    @property
    def partition(self) -> int:
        return self._record.part.tp.partition

    @property
    def offset(self) -> int:
        return self._record.offset

    @property
    def carrier(self) -> dict[str, str] | None:
        """The trace context the publisher attached (W3C headers), for the worker's spans."""
        found = {k: v.decode(errors="replace") for k, v in self._record.headers if k in TRACE_HEADERS and v}
        return found or None

    @property
    def stale(self) -> bool:
        """True when acking would do nothing: settled, or the partition was taken away."""
        r = self._record
        return self.settled or not r.part.alive or r.current is not self or r.state != _IN_FLIGHT

    async def ack(self) -> None:
        self._stream.ack(self)

    async def release(self) -> None:
        self._stream.release(self)

    def __repr__(self) -> str:
        return f"<KafkaDelivery {self.topic}[{self.partition}]@{self.offset} attempt={self.attempt}>"


class _Partition:
    """What this consumer knows of one assigned partition since it was assigned."""

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.alive = True
        self.outstanding: dict[int, _Record] = {}  # offset -> record not finished yet
        self.seen_until: int | None = None  # the offset after the last message handed to us
        self.prior_attempts: dict[int, int] = {}  # from the commit metadata of the last owner
        self.loaded = False  # prior_attempts read (before its first message is taken)
        self.last_commit: tuple[int, str] | None = None

    def commit_target(self) -> tuple[int, str] | None:
        """The contiguous finished prefix: up to the first unfinished message, or past the last
        message seen when all are finished; with the unfinished messages' delivery counts."""
        if self.outstanding:
            point = min(self.outstanding)
        elif self.seen_until is not None:
            point = self.seen_until
        else:
            return None
        counts = [f"{o - point}={r.attempts}" for o, r in sorted(self.outstanding.items()) if r.attempts]
        meta = _METADATA_PREFIX + ",".join(counts)
        while len(meta) > _METADATA_MAX and counts:  # keep the ones nearest the commit point
            counts.pop()
            meta = _METADATA_PREFIX + ",".join(counts)
        return point, meta if counts else ""

    def load_commit(self, offset: int, metadata: str) -> None:
        self.last_commit = (offset, metadata or "")
        if offset < 0 or not metadata or not metadata.startswith(_METADATA_PREFIX):
            return
        for item in metadata[len(_METADATA_PREFIX):].split(","):
            rel, _, n = item.partition("=")
            with contextlib.suppress(ValueError):
                self.prior_attempts[offset + int(rel)] = int(n)


# --------------------------------------------------------------------------- one consumer group


class _Stream(ConsumerRebalanceListener):
    """One topic consumed by one consumer group, with manual commits of the finished prefix."""

    def __init__(
        self,
        queue: KafkaJobQueue,
        *,
        role: str,
        topic: str,
        group: str,
        decode: Callable[[bytes], Any],
        max_deliveries: int | None,
        group_instance_id: str | None,
    ) -> None:
        self.queue = queue
        self.role = role
        self.topic = topic
        self.group = group
        self.decode = decode
        self.max_deliveries = max_deliveries
        self.group_instance_id = group_instance_id
        self.consumer: AIOKafkaConsumer | None = None
        self.parts: dict[TopicPartition, _Partition] = {}
        self.ready: deque[_Record] = deque()  # read, decoded, waiting to be handed out
        self.dead_letter_retry: deque[tuple[_Record, str]] = deque()
        self._receive_lock = asyncio.Lock()
        self._commit_lock = asyncio.Lock()
        self._commit_wanted = asyncio.Event()  # something to commit: within the interval
        self._committer: asyncio.Task[None] | None = None
        self._closed = False
        self._errors_in_a_row = 0

    # ------------------------------------------------------------------ lifecycle
    async def ensure_started(self) -> AIOKafkaConsumer:
        if self._closed:
            raise ConsumerStoppedError()
        if self.consumer is None:
            q = self.queue
            consumer = AIOKafkaConsumer(
                bootstrap_servers=q.bootstrap_servers,
                client_id=f"{q.client_id}-{self.role}",
                group_id=self.group,
                group_instance_id=self.group_instance_id,
                enable_auto_commit=False,  # commits are ours: only finished work is committed
                auto_offset_reset="earliest",  # a new group starts at the oldest job, none is skipped
                max_poll_interval_ms=q.max_poll_interval_ms,
                session_timeout_ms=q.session_timeout_ms,
                rebalance_timeout_ms=q.session_timeout_ms,
                heartbeat_interval_ms=q.heartbeat_interval_ms,
                fetch_max_wait_ms=q.fetch_max_wait_ms,
                request_timeout_ms=q.request_timeout_ms,
                retry_backoff_ms=100,
                consumer_timeout_ms=100,
            )
            consumer.subscribe([self.topic], listener=self)
            await consumer.start()
            self.consumer = consumer
            self._committer = asyncio.create_task(self._commit_loop(), name=f"kafka-commit-{self.role}")
        return self.consumer

    async def close(self, *, commit: bool) -> None:
        """Leave the group. ``commit``: commit the finished prefix first (a clean stop); without
        it nothing is committed (what a killed process leaves behind)."""
        self._closed = True
        if self._committer:
            self._committer.cancel()
            await asyncio.wait({self._committer})  # (a cancellation of the caller still propagates)
            self._committer = None
        if self.consumer is None:
            return
        if commit:
            try:
                async with asyncio.timeout(self.queue.stop_timeout_s):
                    await self._commit()
            except Exception as exc:
                log.warning("final commit of %s failed: %s", self.group, _describe(exc))
        for part in self.parts.values():
            part.alive = False
        self.parts.clear()
        self.ready.clear()
        if commit and self.group_instance_id:
            # A clean stop of a static member: hand the partitions over now, not after the
            # session timeout (aiokafka leaves only as a dynamic member).
            try:
                async with asyncio.timeout(self.queue.stop_timeout_s):
                    await leave_as_static_member(self.consumer, self.group, self.group_instance_id)
            except TimeoutError:
                pass
        try:
            async with asyncio.timeout(self.queue.stop_timeout_s):
                await self.consumer.stop()
        except Exception as exc:
            log.warning("closing the %s consumer: %s", self.role, _describe(exc))
        self.consumer = None

    async def _restart(self) -> None:
        """Start over with a fresh consumer after the old one broke (coordination failure)."""
        log.warning("restarting the %s consumer of %s", self.role, self.group)
        await self.close(commit=True)
        self._closed = False
        self._errors_in_a_row = 0

    # ------------------------------------------------------------------ receiving
    async def receive(self, max_messages: int, timeout: float) -> list[KafkaDelivery[Any]]:
        max_messages = max(1, max_messages)
        async with self._receive_lock:
            consumer = await self.ensure_started()
            await self._retry_dead_letters()
            out = await self._take(max_messages)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max(0.0, timeout)
            while not out:
                remaining = deadline - loop.time()
                try:
                    # Read past what is asked for (up to ``prefetch``), so that undecodable
                    # messages are set aside as soon as they arrive, whichever partition they are
                    # on; what is read and not handed out yet waits in ``ready``, unfinished.
                    batches = await consumer.getmany(
                        # in slices: a message released (or brought back) meanwhile goes out soon
                        timeout_ms=max(0, int(min(remaining, 0.1) * 1000)),
                        max_records=max(max_messages, self.queue.prefetch) - len(self.ready),
                    ) if len(self.ready) < max(max_messages, self.queue.prefetch) else {}
                    self._errors_in_a_row = 0
                except KafkaError as exc:
                    self._errors_in_a_row += 1
                    self.queue._mark_down(exc)
                    log.warning("receiving from %s failed: %s", self.topic, _describe(exc))
                    if self._errors_in_a_row >= 5:
                        await self._restart()
                        consumer = await self.ensure_started()
                    await asyncio.sleep(min(0.5, max(0.0, deadline - loop.time())))
                    batches = {}
                parts = [p for p in (self._part(consumer, tp) for tp in batches) if p and not p.loaded]
                if parts:
                    await self._load_counts(parts)
                for tp, records in batches.items():
                    for record in records:
                        await self._admit(consumer, tp, record)
                out = await self._take(max_messages)
                if loop.time() >= deadline:
                    break
            if out and self.max_deliveries:
                self._commit_wanted.set()  # record the delivery counts (a poison job may kill us)
            return out

    def _part(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> _Partition | None:
        part = self.parts.get(tp)
        if part is None and tp in consumer.assignment():
            part = self.parts[tp] = _Partition(tp)
        return part

    async def _admit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, rec: Any) -> None:
        part = self._part(consumer, tp)
        if part is None or not part.alive:
            return  # revoked meanwhile: the new owner reads it from the committed offset
        if part.seen_until is not None and rec.offset < part.seen_until:
            return  # already taken (cannot happen without a seek; cheap to be sure)
        part.seen_until = rec.offset + 1
        record = _Record(part, rec.offset, rec.key, rec.value, rec.headers,
                         part.prior_attempts.pop(rec.offset, 0))
        part.outstanding[rec.offset] = record
        try:
            record.message = self.decode(rec.value if rec.value is not None else b"")
        except UndecodableMessage as exc:
            log.warning("set aside an undecodable message on %s[%d]@%d: %s",
                        tp.topic, tp.partition, rec.offset, exc.reason)
            await self._dead_letter(record, exc.reason)
            return
        record.state = _WAITING
        self.ready.append(record)

    async def _take(self, limit: int) -> list[KafkaDelivery[Any]]:
        """Hand out up to ``limit`` waiting messages (released ones first)."""
        out: list[KafkaDelivery[Any]] = []
        while self.ready and len(out) < limit:
            record = self.ready.popleft()
            if record.part.alive and record.state == _WAITING:
                delivery = await self._deliver(record)
                if delivery is not None:
                    out.append(delivery)
        return out

    async def _deliver(self, record: _Record) -> KafkaDelivery[Any] | None:
        record.attempts += 1
        if self.max_deliveries and record.attempts > self.max_deliveries:
            reason = (f"delivered {record.attempts - 1} times without being acked "
                      f"(max_deliveries={self.max_deliveries})")
            log.warning("set aside %s[%d]@%d: %s", record.part.tp.topic, record.part.tp.partition,
                        record.offset, reason)
            await self._dead_letter(record, reason)
            if isinstance(record.message, Job):
                # The user is owed an honest answer, not silence: a failure result goes out too.
                failure = Result.failure(record.message, ErrorCode.TOO_MANY_ATTEMPTS, worker_id="kafka")
                try:
                    await self.queue.publish_event(failure)
                except Exception as exc:
                    log.warning("could not report %s as failed: %s", record.message.job_id, type(exc).__name__)
            return None
        record.state = _IN_FLIGHT
        delivery = KafkaDelivery(record.message, record, self, record.attempts)
        record.current = delivery
        return delivery

    # ------------------------------------------------------------------ dead letters
    async def _dead_letter(self, record: _Record, reason: str) -> None:
        tp = record.part.tp
        headers = [
            (REASON_HEADER, reason.encode()),
            ("p2p-source-topic", tp.topic.encode()),
            ("p2p-source-partition", str(tp.partition).encode()),
            ("p2p-source-offset", str(record.offset).encode()),
            ("p2p-group", self.group.encode()),
            ("p2p-attempts", str(record.attempts).encode()),
            *[(k, v) for k, v in record.headers if not k.startswith("p2p-")],
        ]
        try:
            await self.queue._send(self.queue.dead_letter_topic, record.value or b"", record.key,
                                   wait=True, headers=headers)
        except Exception as exc:  # keep it unfinished (it holds the commit point) and try again
            log.warning("dead-lettering %s[%d]@%d failed (%s); will retry",
                        tp.topic, tp.partition, record.offset, _describe(exc))
            record.state = _DEAD_LETTERING  # not handed out; still holds the commit point
            self.dead_letter_retry.append((record, reason))
            return
        self._finish(record)

    async def _retry_dead_letters(self) -> None:
        for _ in range(len(self.dead_letter_retry)):
            record, reason = self.dead_letter_retry.popleft()
            if record.part.alive:
                await self._dead_letter(record, reason)

    # ------------------------------------------------------------------ ack / release
    def ack(self, delivery: KafkaDelivery[Any]) -> None:
        if delivery.stale:
            delivery.settled = True
            return
        delivery.settled = True
        record = delivery._record
        confirmation = self.queue._result_confirmation(record.message) if self.role == "worker" else None
        if confirmation is None:
            self._finish(record)
            return
        # The job's result is on its way to the broker: the job is finished (and may be
        # committed) only once the broker has it; if it never gets there, the job comes again.
        record.state = _CONFIRMING

        def settle(future: asyncio.Future[Any]) -> None:
            if record.state != _CONFIRMING or not record.part.alive:
                return
            if future.cancelled() or future.exception() is not None:
                error = "cancelled" if future.cancelled() else _describe(future.exception())  # type: ignore[arg-type]
                log.warning("the result of %s[%d]@%d was not published (%s); delivering the job again",
                            record.part.tp.topic, record.part.tp.partition, record.offset, error)
                record.state = _WAITING
                self.ready.appendleft(record)
            else:
                self._finish(record)

        if confirmation.done():
            settle(confirmation)
        else:
            confirmation.add_done_callback(settle)
            self.queue._confirming.add(confirmation)
            confirmation.add_done_callback(self.queue._confirming.discard)

    def release(self, delivery: KafkaDelivery[Any]) -> None:
        if delivery.stale:
            delivery.settled = True
            return
        delivery.settled = True
        record = delivery._record
        record.state = _WAITING  # still unfinished: the commit point cannot pass it
        self.ready.appendleft(record)  # first in line, as the in-memory queue does

    def _finish(self, record: _Record) -> None:
        record.state = _DONE
        record.part.outstanding.pop(record.offset, None)
        self._commit_wanted.set()

    # ------------------------------------------------------------------ commits
    async def _commit(self, parts: list[_Partition] | None = None) -> None:
        """Commit the finished prefix (and delivery counts) of ``parts`` (default: all)."""
        consumer = self.consumer
        if consumer is None:
            return
        async with self._commit_lock:
            offsets: dict[TopicPartition, tuple[int, str]] = {}
            for part in parts if parts is not None else list(self.parts.values()):
                target = part.commit_target() if part.alive else None
                if target is not None and target != part.last_commit:
                    offsets[part.tp] = target
            if not offsets:
                return
            await consumer.commit(offsets)
            for tp, target in offsets.items():
                part = self.parts.get(tp)
                if part is not None:
                    part.last_commit = target

    async def _commit_loop(self) -> None:
        """Commits in the background: acks return at once, and one commit request carries
        everything finished within ``commit_interval_ms`` (a crash in that window only means the
        work is done again, which is safe: every step is idempotent by job id). The delivery
        counts ride on the same commits: a job that kills its worker within that window of being
        handed out is not counted, one that kills it later (in generation) is."""
        delay = 0.1
        interval = self.queue.commit_interval_ms / 1000
        while True:
            await self._commit_wanted.wait()
            if interval > 0:
                await asyncio.sleep(interval)
            self._commit_wanted.clear()
            try:
                async with asyncio.timeout(self.queue.request_timeout_ms / 1000):
                    await self._commit()
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except (CommitFailedError, IllegalStateError) as exc:
                # The group is rebalancing: the revoke callback commits, the new owner goes on.
                log.info("commit on %s skipped: %s", self.group, _describe(exc))
            except Exception as exc:
                log.warning("commit on %s failed: %s; retrying", self.group, _describe(exc))
                self.queue._mark_down(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                self._commit_wanted.set()

    # ------------------------------------------------------------------ rebalances
    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        parts = [self.parts[tp] for tp in revoked if tp in self.parts]
        if parts:
            try:
                async with asyncio.timeout(self.queue.request_timeout_ms / 1000):
                    await self._commit(parts)
            except Exception as exc:
                log.warning("commit before rebalance of %s failed: %s", self.group, _describe(exc))
        for part in parts:
            # Deliveries of these partitions are dropped: acking them is a no-op, and the next
            # owner (maybe this consumer again) gets them from the committed offset.
            part.alive = False
            if part.outstanding:
                log.info("partition %s revoked with %d unfinished message(s)", part.tp, len(part.outstanding))
            self.parts.pop(part.tp, None)
        self.ready = deque(r for r in self.ready if r.part.alive)
        self.dead_letter_retry = deque(x for x in self.dead_letter_retry if x[0].part.alive)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            if tp not in self.parts or not self.parts[tp].alive:
                self.parts[tp] = _Partition(tp)

    async def _load_counts(self, parts: list[_Partition]) -> None:
        """Read the delivery counts the previous owners left in the commit metadata, before the
        first message of a newly assigned partition is taken (records can arrive before the
        assignment callback has run, so this is done here)."""
        try:
            async with asyncio.timeout(5.0):
                committed = await self.queue._admin_call(
                    lambda admin: admin.list_consumer_group_offsets(self.group, partitions=[p.tp for p in parts])
                )
        except Exception as exc:
            log.info("could not read the delivery counts of %s: %s", self.group, _describe(exc))
            committed = {}
        for part in parts:
            meta = committed.get(part.tp)
            if meta is not None and part.seen_until is None:
                part.load_commit(meta.offset, meta.metadata)
            part.loaded = True


# --------------------------------------------------------------------------- the adapter


class KafkaJobQueue:
    """The ``JobQueue`` port on Apache Kafka. Consumers are made on first use: a bot never joins
    the worker group, a worker never joins the bot group.

    Tuning (measured with ``bench/queue_bench.py``):
    - ``fetch_max_wait_ms``: aiokafka keeps one fetch in flight per broker, and a partition whose
      data was just fetched waits out that long poll before it is fetched again. A job's progress
      and result share a partition, so the result of a fast job can wait up to this long at the
      bot. 100 ms costs nothing next to a diffusion run; 10 ms gives a ~10 ms queue path but
      about twice the idle CPU (polling).
    - ``linger_ms``: 0. Batches form anyway while a request is in flight.
    - ``pipeline_results``: results are sent without waiting for the broker, and the job's ack
      counts only once the broker has confirmed the result (else the job comes again). A worker
      then sends a batch's results in one request instead of one round trip each.
    - ``commit_interval_ms``: commits are coalesced in the background (a crash in the window
      only means work done again, which is idempotent by job id).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        requests_topic: str = "p2p.requests",
        results_topic: str = "p2p.results",
        dead_letter_topic: str = "p2p.dead-letters",
        partitions: int = 12,
        replication_factor: int = 1,
        worker_group: str = "p2p-workers",
        bot_group: str = "p2p-bots",
        max_poll_interval_ms: int = 900_000,
        session_timeout_ms: int = 10_000,
        max_deliveries: int = 5,
        client_id: str = "prompt2pic",
        group_instance_id: str | None = None,
        heartbeat_interval_ms: int | None = None,
        fetch_max_wait_ms: int = 100,
        linger_ms: int = 0,
        request_timeout_ms: int = 30_000,
        publish_timeout_s: float = 15.0,
        progress_timeout_s: float = 2.0,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 15.0,
        health_interval_s: float = 1.0,
        backlog_cache_s: float = 1.0,
        dead_letter_partitions: int = 1,
        prefetch: int = 32,
        commit_interval_ms: int = 100,
        pipeline_results: bool = True,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.requests_topic = requests_topic
        self.results_topic = results_topic
        self.dead_letter_topic = dead_letter_topic
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.worker_group = worker_group
        self.bot_group = bot_group
        self.max_poll_interval_ms = max_poll_interval_ms
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms or max(100, min(3000, session_timeout_ms // 5))
        self.max_deliveries = max_deliveries
        self.client_id = client_id
        self.group_instance_id = group_instance_id
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.linger_ms = linger_ms
        self.request_timeout_ms = request_timeout_ms
        self.publish_timeout_s = publish_timeout_s
        self.progress_timeout_s = progress_timeout_s
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.health_interval_s = health_interval_s
        self.backlog_cache_s = backlog_cache_s
        self.dead_letter_partitions = dead_letter_partitions
        self.prefetch = prefetch
        self.commit_interval_ms = commit_interval_ms
        self.pipeline_results = pipeline_results
        # Results sent and not yet confirmed by the broker (or failed), by job id: a job's ack
        # waits for its result's confirmation before the job can be committed.
        self._unconfirmed: OrderedDict[str, asyncio.Future[Any]] = OrderedDict()
        self._confirming: set[asyncio.Future[Any]] = set()  # sends that acked jobs wait for

        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None  # group-less: end offsets for the backlog
        self._jobs: _Stream | None = None
        self._events: _Stream | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._started = False
        self._connected = False
        self._backlog: tuple[float, int] | None = None
        self._backlog_refresh: asyncio.Task[int] | None = None
        self._request_partitions: list[TopicPartition] = []

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._started:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout_s
        delay = 0.2
        while True:
            try:
                await self._connect()
                break
            except Exception as exc:
                await self._close_clients()
                if loop.time() + delay > deadline:
                    raise
                log.warning("Kafka at %s not reachable yet (%s); retrying", self.bootstrap_servers, _describe(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)
        self._started = True
        self._connected = True
        self._monitor = asyncio.create_task(self._watch(), name="kafka-health")
        log.info("Kafka queue ready on %s (%s -> %s)", self.bootstrap_servers, self.requests_topic, self.results_topic)

    async def _connect(self) -> None:
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-admin",
            request_timeout_ms=self.request_timeout_ms,
        )
        await self._admin.start()
        await self._ensure_topics()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-producer",
            # Nothing is "accepted" until every in-sync replica has it, and the broker drops the
            # duplicates of the producer's own retries (idempotence; needs acks=all).
            acks="all",
            enable_idempotence=True,
            linger_ms=self.linger_ms,
            request_timeout_ms=self.request_timeout_ms,
        )
        await self._producer.start()

    async def _ensure_topics(self) -> None:
        assert self._admin is not None
        wanted = {
            self.requests_topic: self.partitions,
            self.results_topic: self.partitions,
            self.dead_letter_topic: self.dead_letter_partitions,
        }
        existing = set(await self._admin.list_topics())
        missing = [
            NewTopic(name, n, self.replication_factor) for name, n in wanted.items() if name not in existing
        ]
        if missing:
            response = await self._admin.create_topics(missing)
            for topic, code, *rest in response.topic_errors:
                if code and code != TopicAlreadyExistsError.errno:
                    raise KafkaError(f"creating topic {topic} failed: error {code} {rest[0] if rest else ''}")
            log.info("created topics %s", ", ".join(t.name for t in missing))
        # Wait until every partition has a leader: the first produce or join then just works.
        for _ in range(100):
            described = await self._admin.describe_topics(list(wanted))
            ready = all(
                t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            )
            if ready:
                for t in described:
                    if t["topic"] == self.requests_topic:
                        self._request_partitions = sorted(
                            TopicPartition(self.requests_topic, p["partition"]) for p in t["partitions"]
                        )
                return
            await asyncio.sleep(0.1)
        raise KafkaError(f"topics {sorted(wanted)} have no leaders")

    async def stop(self, commit: bool = True) -> None:
        """Leave the groups (committing what is acked unless ``commit=False``), flush the
        producer, close the clients. Unacked deliveries are delivered again, elsewhere."""
        self._started = False
        self._connected = False
        if self._monitor:
            self._monitor.cancel()
            await asyncio.wait({self._monitor})
            self._monitor = None
        if self._backlog_refresh is not None:
            self._backlog_refresh.cancel()
            await asyncio.wait({self._backlog_refresh})
            self._backlog_refresh = None
        pending = [f for f in (*self._confirming, *self._unconfirmed.values()) if not f.done()]
        if commit and pending:
            # Let the results on their way arrive, so that their jobs can be committed.
            _, late = await asyncio.wait(pending, timeout=self.stop_timeout_s)
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
        for closer in (
            self._producer.stop if self._producer else None,
            self._offsets.stop if self._offsets else None,
            self._admin.close if self._admin else None,
        ):
            if closer is not None:
                try:
                    async with asyncio.timeout(self.stop_timeout_s):
                        await closer()
                except Exception as exc:
                    log.warning("closing a Kafka client: %s", _describe(exc))
        self._producer = self._offsets = self._admin = None

    # ------------------------------------------------------------------ readiness
    def is_ready(self) -> bool:
        return self._started and self._connected

    def _mark_down(self, exc: BaseException) -> None:
        if self._connected and _is_transient(exc):
            log.warning("Kafka unreachable: %s", _describe(exc))
            self._connected = False

    def _mark_up(self) -> None:
        if self._started and not self._connected:
            log.info("Kafka reachable again")
            self._connected = True

    async def _watch(self) -> None:
        """Probe the broker (a small metadata request) so readiness follows the connection."""
        while True:
            await asyncio.sleep(self.health_interval_s)
            try:
                async with asyncio.timeout(max(1.0, self.health_interval_s * 3)):
                    await self._admin_call(lambda admin: admin.describe_topics([self.requests_topic]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._connected:
                    log.warning("Kafka unreachable: %s", _describe(exc))
                    self._connected = False
            else:
                self._mark_up()

    async def _admin_call(self, call: Callable[[AIOKafkaAdminClient], Any]) -> Any:
        if self._admin is None:
            raise KafkaError("the queue is not started")
        return await call(self._admin)

    # ------------------------------------------------------------------ publishing
    async def _send(self, topic: str, value: bytes, key: bytes | None, *, wait: bool,
                    headers: list[tuple[str, bytes]] | None = None,
                    timeout: float | None = None, trace: bool = True) -> asyncio.Future[Any] | None:
        """Send with retries and backoff on transient errors, within ``timeout`` seconds.
        ``wait``: return once the broker has it (acks=all); else once it is queued to send, with
        the future that tells when the broker has it."""
        if self._producer is None:
            raise KafkaError("the queue is not started")
        producer = self._producer
        if _propagate is not None and headers is None and trace:
            carrier: dict[str, str] = {}
            _propagate.inject(carrier)
            if carrier:
                headers = [(k, v.encode()) for k, v in carrier.items()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.publish_timeout_s if timeout is None else timeout)
        delay = 0.05
        while True:
            try:
                if not wait and self._connected:  # queued at once: no timer needed
                    future = await producer.send(topic, value, key=key, headers=headers)
                else:
                    async with asyncio.timeout(max(0.05, deadline - loop.time())):
                        future = await producer.send(topic, value, key=key, headers=headers)
                        if wait:
                            await future
                self._mark_up()
                return None if wait else future
            except (KafkaError, TimeoutError) as exc:
                if not _is_transient(exc):
                    raise
                self._mark_down(exc)
                if loop.time() + delay >= deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def publish_job(self, job: Job) -> None:
        # Key: the job id. Jobs need no order among themselves, so a random-looking key spreads
        # them evenly over the partitions and so over every worker of the group; a user or chat
        # id would pin one busy user's jobs to one partition (one worker) and leave others idle.
        await self._send(self.requests_topic, encode_job(job), job.job_id.encode(), wait=True)

    async def publish_cancel(self, cancel: Cancel) -> None:
        # Key: the job id, as the job's own: the cancellation lands on the job's partition, behind
        # the job, so it reaches the worker that holds (or will take) the job.
        await self._send(self.requests_topic, encode_cancel(cancel), cancel.job_id.encode(), wait=True)

    async def publish_event(self, event: Event) -> None:
        # Key: the job id too. A job's progress events and its result land on one partition, so
        # the bot sees them in order (never "generating 40%" after the picture), and each job's
        # events are spread like the jobs themselves (no hot partition for a busy chat).
        if isinstance(event, Result) and not self.pipeline_results:
            await self._send(self.results_topic, encode_event(event), event.job_id.encode(), wait=True)
        elif isinstance(event, Result):
            # Pipelined: queued now, confirmed in the background; the job's ack holds its commit
            # until the broker has the result (see ``_result_confirmation``). A worker then sends
            # a whole batch's results in one request instead of one round trip per job.
            future = await self._send(self.results_topic, encode_event(event), event.job_id.encode(), wait=False)
            assert future is not None
            self._track_result(event.job_id, future)
        else:  # progress is best effort: queued for sending, not waited for
            future = await self._send(self.results_topic, encode_event(event), event.job_id.encode(),
                                      wait=False, timeout=self.progress_timeout_s, trace=False)
            assert future is not None
            future.add_done_callback(_log_failed_send)

    def _track_result(self, job_id: str, future: asyncio.Future[Any]) -> None:
        self._unconfirmed[job_id] = future
        self._unconfirmed.move_to_end(job_id)
        while len(self._unconfirmed) > 100_000:  # failed ones whose job was never acked
            self._unconfirmed.popitem(last=False)

        def confirmed(f: asyncio.Future[Any]) -> None:
            error = KafkaError("cancelled") if f.cancelled() else f.exception()
            if error is not None:
                self._mark_down(error)  # the failed send stays listed: the job's ack sees it
            elif self._unconfirmed.get(job_id) is f:
                del self._unconfirmed[job_id]

        future.add_done_callback(confirmed)

    def _result_confirmation(self, message: Any) -> asyncio.Future[Any] | None:
        """The pending (or failed) send of the result of the job ``message``, if any."""
        return self._unconfirmed.pop(message.job_id, None) if isinstance(message, Job) else None

    # ------------------------------------------------------------------ consuming
    def _stream(self, role: str) -> _Stream:
        if not self._started:
            raise KafkaError("the queue is not started")
        if role == "jobs":
            if self._jobs is None:
                self._jobs = _Stream(self, role="worker", topic=self.requests_topic, group=self.worker_group,
                                     decode=decode_request, max_deliveries=self.max_deliveries,
                                     group_instance_id=self.group_instance_id)
            return self._jobs
        if self._events is None:
            # Results are not counted out: a bot that cannot reach Telegram releases them until it can.
            self._events = _Stream(self, role="bot", topic=self.results_topic, group=self.bot_group,
                                   decode=decode_event, max_deliveries=None,
                                   group_instance_id=None if self.group_instance_id is None
                                   else f"{self.group_instance_id}-bot")
        return self._events

    async def receive_jobs(self, max_jobs: int, timeout: float) -> list[KafkaDelivery[Job | Cancel]]:
        return await self._stream("jobs").receive(max_jobs, timeout)

    async def receive_events(self, max_events: int, timeout: float) -> list[KafkaDelivery[Event]]:
        return await self._stream("events").receive(max_events, timeout)

    # ------------------------------------------------------------------ backlog
    async def backlog(self) -> int:
        """Consumer lag of the worker group on the requests topic: end offsets minus committed
        offsets (the log start where the group has none), summed. Never holds its caller up
        once a value is known: a value older than ``backlog_cache_s`` is returned as it is and
        refreshed in the background (a status reply must not wait for a broker that is down)."""
        if self._backlog is not None:
            if time.monotonic() - self._backlog[0] >= self.backlog_cache_s:
                if self._backlog_refresh is None or self._backlog_refresh.done():
                    self._backlog_refresh = asyncio.create_task(self._refresh_backlog(), name="kafka-backlog")
            return self._backlog[1]
        return await self._refresh_backlog()

    async def _refresh_backlog(self) -> int:
        delay = 0.1
        for attempt in range(6):
            try:
                async with asyncio.timeout(5.0):
                    value = await self._lag()
                self._backlog = (time.monotonic(), value)
                return value
            except Exception as exc:
                if attempt == 5 or not _is_transient(exc):
                    if self._backlog:  # best effort: the last value known
                        return self._backlog[1]
                    raise
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def _lag(self) -> int:
        if self._offsets is None:
            if not self._started:
                raise KafkaError("the queue is not started")
            offsets = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers,
                                       client_id=f"{self.client_id}-lag", request_timeout_ms=self.request_timeout_ms)
            await offsets.start()
            self._offsets = offsets
        tps = self._request_partitions
        end = await self._offsets.end_offsets(tps)
        start = await self._offsets.beginning_offsets(tps)
        committed = await self._admin_call(
            lambda admin: admin.list_consumer_group_offsets(self.worker_group, partitions=tps)
        )
        total = 0
        for tp in tps:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else start[tp]
            total += max(0, end[tp] - max(position, start[tp]))
        return total

    # ------------------------------------------------------------------ test and operations hooks
    async def publish_raw_job(self, raw: bytes, key: bytes | None = None) -> None:
        await self._send(self.requests_topic, raw, key, wait=True)

    async def publish_raw_event(self, raw: bytes, key: bytes | None = None) -> None:
        await self._send(self.results_topic, raw, key, wait=True)


# --------------------------------------------------------------------------- helpers


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, ConnectionError, OSError)):
        return True
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in (
            "KafkaConnectionError", "KafkaTimeoutError", "NodeNotReadyError", "NoBrokersAvailable",
            "RequestTimedOutError", "NotLeaderForPartitionError", "LeaderNotAvailableError",
            "GroupCoordinatorNotAvailableError", "NotCoordinatorForGroupError",
            "CoordinatorLoadInProgressError", "UnknownTopicOrPartitionError",
        )
    return False


def _describe(exc: BaseException) -> str:
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def _log_failed_send(future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.debug("a progress event was not delivered: %s", _describe(exc))
