"""The composition root's container (config/container.py) through its typed face, ``Components``:
each port's adapter is the one the settings select, a part given replaces the settings' choice,
nothing is built before it is asked for, and the parts that run start and stop as resources, the
last started first."""

from __future__ import annotations

import logging

import pytest
from dependency_injector import providers

from adapters.embedded.generator import FakeGenerator
from adapters.embedded.image_check import NoImageCheck
from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.storage import LocalFolderStorage
from adapters.embedded.translator import IdentityTranslator
from adapters.embedded.user_store import MemoryUserStore
from adapters.sqlite.user_store import SqliteUserStore
from config.bootstrap import Components
from config.settings import GeneratorBackend, Settings
from domain.telemetry import NoMetrics, NoTracer


def settings(tmp_path, **values) -> Settings:
    base = dict(
        _env_file=None,
        metrics_enabled=False,
        local_storage_dir=tmp_path / "images",
        sqlite_path=tmp_path / "users.db",
        generator="fake",
        safety_image_detector="none",
    )
    return Settings(**(base | values))


def test_the_settings_select_each_ports_adapter(tmp_path):
    parts = Components(settings(tmp_path))
    assert isinstance(parts.queue, MemoryJobQueue) and isinstance(parts.storage, LocalFolderStorage)
    assert isinstance(parts.generator, FakeGenerator) and parts.generator_backend == GeneratorBackend.FAKE
    assert isinstance(parts.prompt_translator, IdentityTranslator)  # the placeholder reads no translation
    assert isinstance(parts.image_check, NoImageCheck)
    assert isinstance(parts.metrics, NoMetrics) and isinstance(parts.tracer, NoTracer)
    assert isinstance(parts.user_stores.store, SqliteUserStore)
    memory = Components(settings(tmp_path, user_store="memory"))
    assert isinstance(memory.user_stores.store, MemoryUserStore) and memory.user_stores.delivery_log is None
    s3 = Components(settings(tmp_path, storage_backend="s3", s3_bucket="pictures"))
    assert type(s3.storage).__name__ == "S3Storage" and s3.storage.bucket == "pictures"  # type: ignore[attr-defined]
    kafka = Components(settings(tmp_path, queue_backend="kafka", metrics_enabled=True), role="worker")
    queue = kafka.queue
    assert type(queue).__name__ == "KafkaJobQueue"
    assert queue.on_dead_letter == kafka.metrics.dead_lettered  # type: ignore[attr-defined]  # counted


def test_each_part_is_built_once_and_shared(tmp_path):
    parts = Components(settings(tmp_path))
    assert parts.queue is parts.queue and parts.worker is parts.worker
    worker, submit = parts.worker, parts.submit
    assert worker.queue is parts.queue is submit.queue and worker.storage is parts.storage
    assert worker.generator is parts.generator and worker.policy is parts.policy
    assert worker.metrics is parts.metrics is submit.metrics
    # Two processes' containers share nothing.
    assert Components(settings(tmp_path)).queue is not parts.queue


def test_given_parts_replace_the_settings_choice(tmp_path):
    queue, generator, translator = MemoryJobQueue(), FakeGenerator(max_batch=2), IdentityTranslator()
    storage = LocalFolderStorage(tmp_path / "given")
    parts = Components(
        settings(tmp_path, generator="tiny"),
        queue=queue,
        storage=storage,
        generator=generator,
        prompt_translator=translator,
    )
    assert parts.queue is queue and parts.storage is storage and parts.generator is generator
    assert parts.prompt_translator is translator
    # The backend is the given generator's own, not GENERATOR's: the worker reports a placeholder.
    assert parts.generator_backend == GeneratorBackend.FAKE and parts.worker.generator_kind == "placeholder"
    assert parts.worker.queue is queue and parts.worker.generator is generator


def test_nothing_is_built_before_it_is_asked_for(tmp_path):
    """The bot's parts build no generator, translator or image check; the worker's do, once."""
    built: list[str] = []

    def recorded(name: str, make):
        def build():
            built.append(name)
            return make()

        return providers.Singleton(build)

    parts = Components(settings(tmp_path))
    container = parts.container
    container.generator.override(recorded("generator", lambda: FakeGenerator(max_batch=1)))
    container.prompt_translator.override(recorded("translator", IdentityTranslator))
    container.image_check.override(recorded("image check", NoImageCheck))
    bots = [parts.submit, parts.http, parts.queue, parts.storage, parts.watch_backlog, parts.user_stores]
    assert all(part is not None for part in bots) and built == []
    assert parts.worker is parts.worker and parts.calibrate is None  # the placeholder cannot time itself
    assert sorted(built) == ["generator", "image check", "translator"]


async def test_the_running_parts_start_in_order_and_stop_in_reverse(tmp_path, caplog):
    events: list[str] = []

    class Recorded(LocalFolderStorage):
        async def start(self) -> None:
            events.append("storage started")
            await super().start()

        async def stop(self) -> None:
            events.append("storage stopped")
            raise OSError("disk gone")  # a failed stop is logged; the others still stop

    class RecordedQueue(MemoryJobQueue):
        async def start(self) -> None:
            events.append("queue started")
            await super().start()

        async def stop(self) -> None:
            events.append("queue stopped")
            await super().stop()

    parts = Components(settings(tmp_path), queue=RecordedQueue(), storage=Recorded(tmp_path / "images"))
    await parts.start("queue")
    await parts.start("storage")
    with caplog.at_level(logging.ERROR):
        await parts.stop()
    assert events == ["queue started", "storage started", "storage stopped", "queue stopped"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == ["stopping Recorded failed"]
    await parts.stop()  # nothing left to stop
    assert len(events) == 4


async def test_a_part_that_fails_to_start_is_not_stopped_and_can_start_again(tmp_path):
    tries: list[int] = []

    class Flaky(MemoryJobQueue):
        async def start(self) -> None:
            tries.append(1)
            if len(tries) == 1:
                raise ConnectionRefusedError("down")
            await super().start()

        async def stop(self) -> None:
            tries.append(-1)
            await super().stop()

    parts = Components(settings(tmp_path), queue=Flaky())
    with pytest.raises(ConnectionRefusedError):
        await parts.start("queue")
    assert parts.runner("queue").name == "Flaky"
    await parts.start("queue")
    await parts.stop()
    assert tries == [1, 1, -1]
