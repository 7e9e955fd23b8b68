"""One topic consumed by one consumer group, with manual commits of the finished prefix.

Offsets are committed by hand only (``enable_auto_commit=False``), and only up to the first
message of a partition that is not finished yet (see ``offsets``). A job is acked by the worker
only after its result is published, so a worker that dies or loses a partition never loses a
job: the group's next owner of the partition gets it again, with its delivery count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import ConsumerStoppedError, IllegalStateError, KafkaError

from adapters.kafka.admin import KafkaAdmin
from adapters.kafka.commits import Committer
from adapters.kafka.config import KafkaConfig
from adapters.kafka.dead_letters import DeadLetters, Send
from adapters.kafka.deliveries import KafkaDelivery
from adapters.kafka.errors import describe
from adapters.kafka.health import Health
from adapters.kafka.lanes import ReadyLines
from adapters.kafka.leave import leave_as_static_member
from adapters.kafka.offsets import CONFIRMING, IN_FLIGHT, WAITING, PartitionBook, Record
from adapters.kafka.producer import ResultConfirmations
from domain.errors import UndecodableMessage
from domain.models import Job, Lane

log = logging.getLogger(__name__)


class GroupConsumer(ConsumerRebalanceListener):
    def __init__(
        self,
        config: KafkaConfig,
        client_options: dict[str, Any],
        *,
        role: str,
        topic: str,
        group: str,
        decode: Callable[[bytes], Any],
        health: Health,
        admin: KafkaAdmin,
        send_dead_letter: Send,
        confirmations: ResultConfirmations | None = None,
        counts_deliveries: bool = False,
        group_instance_id: str | None = None,
        lanes: Mapping[Lane, str] | None = None,
        relaxed_every: int = 4,
    ) -> None:
        self.config = config
        self.client_options = client_options
        self.role = role
        self.topic = topic
        self.group = group
        self.decode = decode
        self.health = health
        self.admin = admin
        self.confirmations = confirmations  # results whose jobs' acks wait for the broker
        self.counts_deliveries = counts_deliveries  # commit the counts as soon as jobs go out
        self.group_instance_id = group_instance_id
        # The topic of each lane (``adapters.kafka.lanes``); one topic: its one lane, priority.
        self.lanes: dict[Lane, str] = dict(lanes) if lanes else {Lane.PRIORITY: topic}
        self.dead_letters = DeadLetters(group, send_dead_letter, self._finish)
        self.consumer: AIOKafkaConsumer | None = None
        self.parts: dict[TopicPartition, PartitionBook] = {}
        # read, decoded, waiting to be handed out: one line per lane
        self.ready = ReadyLines(self.lanes, relaxed_every)
        self.committer = Committer(group, self.parts, config, health)
        self._receive_lock = asyncio.Lock()
        self._closed = False
        self._errors_in_a_row = 0

    def assignment(self) -> set[int]:
        """The partitions of the topic this consumer holds now (of the priority lane's topic,
        the requests topic, when it reads lanes)."""
        consumer = self.consumer
        return set() if consumer is None else {tp.partition for tp in consumer.assignment() if tp.topic == self.topic}

    # ------------------------------------------------------------------ lifecycle
    async def ensure_started(self) -> AIOKafkaConsumer:
        if self._closed:
            raise ConsumerStoppedError()
        if self.consumer is None:
            c = self.config
            consumer = AIOKafkaConsumer(
                bootstrap_servers=c.bootstrap_servers,
                client_id=f"{c.client_id}-{self.role}",
                **self.client_options,
                group_id=self.group,
                group_instance_id=self.group_instance_id,
                enable_auto_commit=False,  # commits are ours: only finished work is committed
                auto_offset_reset="earliest",  # a new group starts at the oldest job, none is skipped
                max_poll_interval_ms=c.max_poll_interval_ms,
                session_timeout_ms=c.session_timeout_ms,
                rebalance_timeout_ms=c.session_timeout_ms,
                heartbeat_interval_ms=c.heartbeat_ms,
                fetch_max_wait_ms=c.fetch_max_wait_ms,
                request_timeout_ms=c.request_timeout_ms,
                retry_backoff_ms=100,
                consumer_timeout_ms=100,
            )
            consumer.subscribe(list(dict.fromkeys([self.topic, *self.lanes.values()])), listener=self)
            try:
                await consumer.start()
            except BaseException:
                # E.g. a group this user may not join (GroupAuthorizationFailedError): close
                # this consumer's connections, or every later try would leave one more open.
                with contextlib.suppress(Exception):
                    await consumer.stop()
                raise
            self.consumer = consumer
            self.committer.start(consumer, f"kafka-commit-{self.role}")
        return self.consumer

    async def close(self, *, commit: bool) -> None:
        """Leave the group. ``commit``: commit the finished prefix first (a clean stop); without
        it nothing is committed (what a killed process leaves behind)."""
        self._closed = True
        timeout = self.config.stop_timeout_s
        await self.committer.stop_loop()
        if self.consumer is None:
            return
        if commit:
            try:
                async with asyncio.timeout(timeout):
                    await self.committer.commit()
            except Exception as exc:
                log.warning("final commit of %s failed: %s", self.group, describe(exc))
        for part in self.parts.values():
            part.alive = False
        self.parts.clear()
        self.ready.clear()
        if commit and self.group_instance_id:
            # A clean stop of a static member: hand the partitions over now, not after the
            # session timeout (aiokafka leaves only as a dynamic member).
            try:
                async with asyncio.timeout(timeout):
                    await leave_as_static_member(self.consumer, self.group, self.group_instance_id)
            except TimeoutError:
                pass
        try:
            async with asyncio.timeout(timeout):
                await self.consumer.stop()
        except Exception as exc:
            log.warning("closing the %s consumer: %s", self.role, describe(exc))
        self.consumer = self.committer.consumer = None

    async def _restart(self) -> None:
        """Start over with a fresh consumer after the old one broke (coordination failure)."""
        log.warning("restarting the %s consumer of %s", self.role, self.group)
        await self.close(commit=True)
        self._closed = False
        self._errors_in_a_row = 0

    # ------------------------------------------------------------------ receiving
    async def receive(self, max_messages: int, timeout: float) -> list[KafkaDelivery[Any]]:
        max_messages = max(1, max_messages)
        prefetch = max(max_messages, self.config.prefetch)
        async with self._receive_lock:
            consumer = await self.ensure_started()
            await self.dead_letters.retry()
            if len(self.lanes) > 1:
                # What the fetcher holds now, the priority lane's first (however much relaxed
                # work it holds too): then the lines hand out priority first, the relaxed lane's
                # share kept, whatever was read before.
                await self._admit_all(consumer, await self._read(consumer, 0, prefetch, only=Lane.PRIORITY))
                await self._admit_all(consumer, await self._read(consumer, 0, prefetch))
            out = self._take(max_messages)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max(0.0, timeout)
            while not out:
                remaining = deadline - loop.time()
                try:
                    # Read past what is asked for (up to ``prefetch``), so that undecodable
                    # messages are set aside as soon as they arrive, whichever partition they are
                    # on; what is read and not handed out yet waits in ``ready``, unfinished.
                    # in slices: a message released (or brought back) meanwhile goes out soon
                    batches = await self._read(consumer, max(0, int(min(remaining, 0.1) * 1000)), prefetch)
                    self._errors_in_a_row = 0
                except KafkaError as exc:
                    self._errors_in_a_row += 1
                    self.health.mark_down(exc)
                    log.warning("receiving from %s failed: %s", self.topic, describe(exc))
                    if self._errors_in_a_row >= 5:
                        await self._restart()
                        consumer = await self.ensure_started()
                    await asyncio.sleep(min(0.5, max(0.0, deadline - loop.time())))
                    batches = {}
                await self._admit_all(consumer, batches)
                out = self._take(max_messages)
                if loop.time() >= deadline:
                    break
            if out and self.counts_deliveries:
                self.committer.want()  # record the delivery counts (a poison job may kill us)
            return out

    async def _read(
        self, consumer: AIOKafkaConsumer, timeout_ms: int, prefetch: int, only: Lane | None = None
    ) -> dict[TopicPartition, list[Any]]:
        """Read what the fetcher has (waiting up to ``timeout_ms`` for something), each lane's
        line filled up to ``prefetch`` at most: a lane whose line is full is not read (its
        records wait in the fetcher's buffer, which goes on fetching the other partitions)."""
        lanes = [only] if only is not None else list(self.lanes)
        room = {lane: prefetch - self.ready.count(lane) for lane in lanes}
        open_lanes = [lane for lane in lanes if room[lane] > 0]
        if not open_lanes:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        partitions: list[TopicPartition] = []
        if len(open_lanes) < len(self.lanes):  # read only these lanes' partitions
            topics = {self.lanes[lane] for lane in open_lanes}
            partitions = [tp for tp in consumer.assignment() if tp.topic in topics]
            if not partitions:
                await asyncio.sleep(timeout_ms / 1000)
                return {}
        try:
            return await consumer.getmany(
                *partitions, timeout_ms=timeout_ms, max_records=min(room[lane] for lane in open_lanes)
            )
        except IllegalStateError:  # a partition taken away meanwhile (a rebalance)
            return {}

    async def _admit_all(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Any]]) -> None:
        parts = [p for p in (self._part(consumer, tp) for tp in batches) if p and not p.loaded]
        if parts:
            await self._load_counts(parts)
        for tp, records in batches.items():
            for record in records:
                await self._admit(consumer, tp, record)

    def _part(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> PartitionBook | None:
        part = self.parts.get(tp)
        if part is None and tp in consumer.assignment():
            part = self.parts[tp] = PartitionBook(tp)
        return part

    async def _admit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, rec: Any) -> None:
        part = self._part(consumer, tp)
        if part is None or not part.alive:
            return  # revoked meanwhile: the new owner reads it from the committed offset
        record = part.admit(rec.offset, rec.key, rec.value, rec.headers)
        if record is None:
            return
        try:
            record.message = self.decode(rec.value if rec.value is not None else b"")
        except UndecodableMessage as exc:
            log.warning(
                "set aside an undecodable message on %s[%d]@%d: %s", tp.topic, tp.partition, rec.offset, exc.reason
            )
            await self.dead_letters.set_aside(record, exc.reason)
            return
        record.state = WAITING
        self.ready.append(record)

    def _take(self, limit: int) -> list[KafkaDelivery[Any]]:
        """Hand out up to ``limit`` waiting messages (released ones first in their lane; the
        priority lane first, the relaxed lane's share kept), each delivery counted: the worker
        (``ProcessJobs``) decides when a job was delivered too often."""
        out: list[KafkaDelivery[Any]] = []
        while len(out) < limit:
            record = self.ready.take(lambda r: r.part.alive and r.state == WAITING)
            if record is None:
                break
            if record.part.alive and record.state == WAITING:
                record.attempts += 1
                record.state = IN_FLIGHT
                record.current = KafkaDelivery(record.message, record, self, record.attempts)
                out.append(record.current)
        return out

    # ------------------------------------------------------------------ ack / release
    def ack(self, delivery: KafkaDelivery[Any]) -> None:
        if delivery.stale:
            delivery.settled = True
            return
        delivery.settled = True
        record = delivery.record
        message = record.message
        confirmations = self.confirmations
        confirmation = (
            confirmations.take(message.job_id) if confirmations is not None and isinstance(message, Job) else None
        )
        if confirmations is None or confirmation is None:
            self._finish(record)
            return
        # The job's result is on its way to the broker: the job is finished (and may be
        # committed) only once the broker has it; if it never gets there, the job comes again.
        record.state = CONFIRMING

        def settle(future: asyncio.Future[Any]) -> None:
            if record.state != CONFIRMING or not record.part.alive:
                return
            error = "cancelled" if future.cancelled() else future.exception()
            if error is not None:
                log.warning(
                    "the result of %s[%d]@%d was not published (%s); delivering the job again",
                    record.part.tp.topic,
                    record.part.tp.partition,
                    record.offset,
                    error if isinstance(error, str) else describe(error),
                )
                record.state = WAITING
                self.ready.appendleft(record)
            else:
                self._finish(record)

        if confirmation.done():
            settle(confirmation)
        else:
            confirmation.add_done_callback(settle)
            confirmations.wait_for(confirmation)

    def release(self, delivery: KafkaDelivery[Any]) -> None:
        if delivery.stale:
            delivery.settled = True
            return
        delivery.settled = True
        record = delivery.record
        record.state = WAITING  # still unfinished: the commit point cannot pass it
        self.ready.appendleft(record)  # first in line, as the in-memory queue does

    def hand_back(self, delivery: KafkaDelivery[Any]) -> None:
        """A release on a planned stop: this delivery is taken off the message's count, and the
        next commit (at the latest the final one of ``close``) carries the count as it was
        before the message was handed out, for the partition's next owner."""
        if not delivery.stale:
            delivery.record.attempts = max(0, delivery.record.attempts - 1)
            if self.counts_deliveries:
                self.committer.want()
        self.release(delivery)

    def _finish(self, record: Record) -> None:
        record.part.finish(record)
        self.committer.want()

    # ------------------------------------------------------------------ rebalances
    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        parts = [self.parts[tp] for tp in revoked if tp in self.parts]
        if parts:
            try:
                async with asyncio.timeout(self.config.request_timeout_ms / 1000):
                    await self.committer.commit(parts)
            except Exception as exc:
                log.warning("commit before rebalance of %s failed: %s", self.group, describe(exc))
        for part in parts:
            # Deliveries of these partitions are dropped: acking them is a no-op, and the next
            # owner (maybe this consumer again) gets them from the committed offset.
            part.alive = False
            if part.outstanding:
                log.info("partition %s revoked with %d unfinished message(s)", part.tp, len(part.outstanding))
            self.parts.pop(part.tp, None)
        self.ready.keep(lambda r: r.part.alive)
        self.dead_letters.drop_revoked()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            if tp not in self.parts or not self.parts[tp].alive:
                self.parts[tp] = PartitionBook(tp)

    async def _load_counts(self, parts: list[PartitionBook]) -> None:
        """Read the delivery counts the previous owners left in the commit metadata, before the
        first message of a newly assigned partition is taken (records can arrive before the
        assignment callback has run, so this is done here)."""
        try:
            async with asyncio.timeout(5.0):
                committed = await self.admin.committed_offsets(self.group, [p.tp for p in parts])
        except Exception as exc:
            log.info("could not read the delivery counts of %s: %s", self.group, describe(exc))
            committed = {}
        for part in parts:
            meta = committed.get(part.tp)
            if meta is not None and part.seen_until is None:
                part.load_commit(meta.offset, meta.metadata)
            part.loaded = True
