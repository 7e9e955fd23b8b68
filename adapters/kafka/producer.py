"""Sending to Kafka: the idempotent producer with retries on transient errors, the trace context
in the headers, and the confirmations of pipelined results that acked jobs wait for."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from adapters.kafka.config import KafkaConfig
from adapters.kafka.errors import describe, is_transient
from adapters.kafka.health import Health

try:  # trace context travels in the message headers when OpenTelemetry is installed
    from opentelemetry import propagate as _propagate
except ImportError:  # pragma: no cover - the bot-only install has it too; tolerate its absence
    _propagate = None  # type: ignore[assignment]  # (a missing optional module)

log = logging.getLogger(__name__)
Headers = list[tuple[str, bytes]]


class Producer:
    """One ``AIOKafkaProducer`` (acks=all, idempotent) and ``send`` with retries and backoff."""

    def __init__(self, config: KafkaConfig, client_options: dict[str, Any], health: Health) -> None:
        self.config = config
        self.client_options = client_options
        self.health = health
        self.client: AIOKafkaProducer | None = None

    async def start(self) -> None:
        c = self.config
        self.client = AIOKafkaProducer(
            bootstrap_servers=c.bootstrap_servers,
            client_id=f"{c.client_id}-producer",
            **self.client_options,
            # Nothing is "accepted" until every in-sync replica has it, and the broker drops the
            # duplicates of the producer's own retries (idempotence; needs acks=all).
            acks="all",
            enable_idempotence=True,
            linger_ms=c.linger_ms,
            request_timeout_ms=c.request_timeout_ms,
        )
        await self.client.start()

    async def stop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.stop()

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        *,
        wait: bool,
        headers: Headers | None = None,
        timeout: float | None = None,
        trace: bool = True,
    ) -> asyncio.Future[Any] | None:
        """Send with retries and backoff on transient errors, within ``timeout`` seconds.
        ``wait``: return once the broker has it (acks=all); else once it is queued to send, with
        the future that tells when the broker has it."""
        if self.client is None:
            raise KafkaError("the queue is not started")
        producer = self.client
        if _propagate is not None and headers is None and trace:
            carrier: dict[str, str] = {}
            _propagate.inject(carrier)
            if carrier:
                headers = [(k, v.encode()) for k, v in carrier.items()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.publish_timeout_s if timeout is None else timeout)

        async def attempt() -> asyncio.Future[Any] | None:
            try:
                if not wait and self.health.connected:  # queued at once: no timer needed
                    future = await producer.send(topic, value, key=key, headers=headers)
                else:
                    async with asyncio.timeout(max(0.05, deadline - loop.time())):
                        future = await producer.send(topic, value, key=key, headers=headers)
                        if wait:
                            await future
            except (KafkaError, TimeoutError) as exc:
                if is_transient(exc):
                    self.health.mark_down(exc)
                raise
            self.health.mark_up()
            return None if wait else future

        retrying = AsyncRetrying(
            # Not past the deadline: the last try is the one whose pause would reach it.
            stop=lambda state: loop.time() + state.upcoming_sleep >= deadline,
            wait=wait_exponential(multiplier=0.05, max=1.0),  # 0.05, 0.1, 0.2, 0.4, 0.8, 1 s, ...
            retry=retry_if_exception(lambda exc: isinstance(exc, (KafkaError, TimeoutError)) and is_transient(exc)),
            reraise=True,
        )
        return await retrying(attempt)


class ResultConfirmations:
    """Results sent and not yet confirmed by the broker (or failed), by job id: a job's ack waits
    for its result's confirmation before the job can be committed (pipelined results)."""

    LIMIT = 100_000  # failed ones whose job was never acked are forgotten, oldest first

    def __init__(self, health: Health) -> None:
        self.health = health
        self._unconfirmed: OrderedDict[str, asyncio.Future[Any]] = OrderedDict()
        self._waited_for: set[asyncio.Future[Any]] = set()  # sends that acked jobs wait for

    def track(self, job_id: str, future: asyncio.Future[Any]) -> None:
        """The result of ``job_id`` is on its way: ``future`` tells when the broker has it."""
        self._unconfirmed[job_id] = future
        self._unconfirmed.move_to_end(job_id)
        while len(self._unconfirmed) > self.LIMIT:
            self._unconfirmed.popitem(last=False)

        def confirmed(f: asyncio.Future[Any]) -> None:
            error = KafkaError("cancelled") if f.cancelled() else f.exception()
            if error is not None:
                self.health.mark_down(error)  # the failed send stays listed: the job's ack sees it
            elif self._unconfirmed.get(job_id) is f:
                del self._unconfirmed[job_id]

        future.add_done_callback(confirmed)

    def take(self, job_id: str) -> asyncio.Future[Any] | None:
        """The pending (or failed) send of the result of ``job_id``, if any; an acked job waits
        for it (``wait_for``) before it counts as finished."""
        return self._unconfirmed.pop(job_id, None)

    def wait_for(self, future: asyncio.Future[Any]) -> None:
        """Keep ``future`` among the sends a clean stop lets arrive."""
        self._waited_for.add(future)
        future.add_done_callback(self._waited_for.discard)

    def pending(self) -> list[asyncio.Future[Any]]:
        return [f for f in (*self._waited_for, *self._unconfirmed.values()) if not f.done()]


def log_failed_send(future: asyncio.Future[Any]) -> None:
    """Done callback of a best-effort send (progress)."""
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.debug("a progress event was not delivered: %s", describe(exc))
