"""The image check through the real NudeNet detector (its ONNX model from the installed package,
onnxruntime on the CPU), on pictures the tests make: clean ones pass, the flagged sample is
flagged; the check runs on its own thread and never blocks the event loop; and the worker's
safety step (spoiler, refuse, off) on the real detector."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from PIL import Image

from adapters.embedded.generator import FakeGenerator, draw
from adapters.embedded.image_check import NoImageCheck
from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.storage import LocalFolderStorage
from adapters.nudenet.detector import DEFAULT_CATEGORIES, LABELS, NudeNetCheck
from domain.errors import PromptRefused
from domain.models import ErrorCode, GenerationRequest, JobStatus, Result, image_key
from domain.safety import ImageAction
from domain.safety_gate import CHECK_FAILED, SafetyGate
from domain.use_cases import ProcessJobs, SubmitPrompt
from tests.safety.helpers import FLAGGED_SAMPLE, MARKER, SampleGenerator, flagged_png, png


@pytest.fixture
async def nudenet():
    check = NudeNetCheck()
    await check.start()
    yield check
    await check.stop()


def clean_pictures() -> list[bytes]:
    """Pictures the fake generator makes (the embedded default), at the sizes the bot asks for."""
    sizes = [(1024, 1024), (512, 384), (768, 1344)]
    return [
        draw(GenerationRequest(prompt=f"a landscape {i}", width=w, height=h, seed=i)).png
        for i, (w, h) in enumerate(sizes)
    ]


async def test_clean_generated_pictures_pass(nudenet):
    verdicts = await nudenet.check(clean_pictures())
    assert [v.flagged for v in verdicts] == [False, False, False]
    assert all(v.seconds > 0 for v in verdicts)


async def test_the_flagged_sample_is_flagged_by_the_real_detector(nudenet):
    [verdict] = await nudenet.check([flagged_png(1024, 1024)])
    assert verdict.flagged
    assert verdict.categories == ("FEMALE_BREAST_EXPOSED",)
    top = max(d.score for d in verdict.detections if d.category == "FEMALE_BREAST_EXPOSED")
    assert top >= 0.8  # at the default threshold 0.5 with room to spare


async def test_threshold_and_categories_are_the_operators():
    strict = NudeNetCheck(threshold=0.95)
    other = NudeNetCheck(categories=["MALE_GENITALIA_EXPOSED"])
    try:
        [high] = await strict.check([flagged_png(512, 512)])
        [elsewhere] = await other.check([flagged_png(512, 512)])
    finally:
        await strict.stop()
        await other.stop()
    assert not high.flagged and any(d.category == "FEMALE_BREAST_EXPOSED" for d in high.detections)
    assert not elsewhere.flagged
    with pytest.raises(ValueError, match="FEMALE_BREST"):
        NudeNetCheck(categories=["FEMALE_BREST_EXPOSED"])
    assert set(DEFAULT_CATEGORIES) <= set(LABELS)


async def test_any_png_mode_is_read(nudenet):
    sample = Image.open(FLAGGED_SAMPLE)
    rgba = png(sample.convert("RGBA").resize((512, 512)))
    grey = png(Image.new("L", (256, 256), 128))
    palette = png(Image.new("P", (300, 200), 3))
    verdicts = await nudenet.check([rgba, grey, palette])
    assert [v.flagged for v in verdicts] == [True, False, False]
    with pytest.raises(ValueError, match="decodable"):
        await nudenet.check([b"not a picture"])


async def test_the_check_runs_on_its_thread_and_never_blocks_the_event_loop(nudenet):
    threads: set[str] = set()
    model = nudenet._model
    real_detect = model.detect

    def recording_detect(image):
        threads.add(threading.current_thread().name)
        return real_detect(image)

    model.detect = recording_detect
    pictures = [flagged_png(1024, 1024)] + clean_pictures() * 5
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    verdicts = await nudenet.check(pictures)
    elapsed = time.perf_counter() - started
    done.set()
    await tick
    model.detect = real_detect
    assert [v.flagged for v in verdicts] == [True] + [False] * 15
    assert threads and all(name.startswith("nudenet") for name in threads), threads
    # The detector took a while (16 pictures), and meanwhile the loop kept ticking every few ms.
    assert elapsed > 0.3
    assert len(gaps) > 20 and max(gaps) < min(0.15, elapsed / 3), (max(gaps), elapsed)


# --------------------------------------------------------------------------- the worker's step


async def results_of(queue: MemoryJobQueue) -> list[Result]:
    out = []
    for d in await queue.receive_events(1000, 0.1):
        if isinstance(d.message, Result):
            out.append(d.message)
        await d.ack()
    return out


@pytest.fixture
async def rig(tmp_path, nudenet):
    queue = MemoryJobQueue()
    storage = LocalFolderStorage(tmp_path / "img")
    await queue.start()
    await storage.start()
    submit = SubmitPrompt(queue, default_width=512, default_height=512, seed_source=lambda: 3)

    async def run(action: ImageAction, prompts: list[str], check=nudenet) -> dict[str, Result]:
        gate = SafetyGate(image_check=check, action=action)
        worker = ProcessJobs(queue, SampleGenerator(), storage, max_batch=8, batch_wait_s=0.01, safety=gate)
        jobs = [await submit(user_id=i, chat_id=i, prompt=p) for i, p in enumerate(prompts)]
        await worker.run_once()
        by_id = {r.job_id: r for r in await results_of(queue)}
        return {job.prompt: by_id[job.job_id] for job in jobs}

    return run, storage


async def test_spoiler_stores_the_flagged_picture_and_says_so(rig):
    run, storage = rig
    results = await run(ImageAction.SPOILER, [f"a {MARKER} bloom", "a quiet lake"])
    flagged, clean = results[f"a {MARKER} bloom"], results["a quiet lake"]
    assert flagged.status == JobStatus.DONE and flagged.spoiler and flagged.flags == ("FEMALE_BREAST_EXPOSED",)
    assert await storage.exists(image_key(flagged.job_id))
    assert clean.status == JobStatus.DONE and not clean.spoiler and clean.flags == ()


async def test_refuse_does_not_store_the_flagged_picture(rig):
    run, storage = rig
    results = await run(ImageAction.REFUSE, [f"a {MARKER} bloom", "a quiet lake"])
    flagged, clean = results[f"a {MARKER} bloom"], results["a quiet lake"]
    assert flagged.status == JobStatus.FAILED and flagged.error_code == ErrorCode.IMAGE_REFUSED
    assert flagged.image_key is None and not await storage.exists(image_key(flagged.job_id))
    assert clean.status == JobStatus.DONE and await storage.exists(image_key(clean.job_id))


async def test_off_checks_nothing(rig):
    run, _ = rig
    results = await run(ImageAction.OFF, [f"a {MARKER} bloom"])
    assert results[f"a {MARKER} bloom"].status == JobStatus.DONE and not results[f"a {MARKER} bloom"].spoiler


async def test_a_failing_check_flags_rather_than_passes(rig):
    class Broken(NoImageCheck):
        inspects = True  # a detector, only a broken one

        async def check(self, pngs):
            raise RuntimeError("onnxruntime exploded")

    run, _ = rig
    results = await run(ImageAction.SPOILER, ["a quiet lake"], check=Broken())
    assert results["a quiet lake"].spoiler and results["a quiet lake"].flags == (CHECK_FAILED,)


async def test_a_redelivered_job_keeps_its_spoiler(tmp_path, nudenet):
    """The spoiler is not stored with the picture: a job whose picture was stored before (its
    result was lost) is checked again, so the repeated result is blurred too."""
    queue = MemoryJobQueue()
    storage = LocalFolderStorage(tmp_path / "img")
    await queue.start()
    await storage.start()
    submit = SubmitPrompt(queue, default_width=512, default_height=512, seed_source=lambda: 3)
    job = await submit(user_id=1, chat_id=1, prompt=f"{MARKER} again")
    await storage.put(image_key(job.job_id), flagged_png(512, 512), "image/png", {})
    generator = FakeGenerator()
    worker = ProcessJobs(queue, generator, storage, safety=SafetyGate(image_check=nudenet))
    await worker.run_once()
    [result] = await results_of(queue)
    assert result.status == JobStatus.DONE and result.spoiler


def test_the_settings_choose_the_check(monkeypatch):
    import importlib.util

    from config.safety import image_check
    from config.settings import Settings

    assert isinstance(image_check(Settings(_env_file=None)), NudeNetCheck)  # auto, installed here
    assert isinstance(image_check(Settings(_env_file=None, safety_image_detector="nudenet")), NudeNetCheck)
    assert isinstance(image_check(Settings(_env_file=None, safety_image_detector="none")), NoImageCheck)
    assert isinstance(image_check(Settings(_env_file=None, safety_image_action="off")), NoImageCheck)
    custom = image_check(
        Settings(
            _env_file=None,
            safety_image_threshold=0.7,
            safety_image_categories="ANUS_EXPOSED, FEET_EXPOSED",
            safety_image_threads=1,
        )
    )
    assert (custom.threshold, custom.categories, custom.threads) == (0.7, {"ANUS_EXPOSED", "FEET_EXPOSED"}, 1)
    with pytest.raises(ValueError, match="unknown NudeNet categories"):
        image_check(Settings(_env_file=None, safety_image_categories="NOPE"))
    # A bot-only install (no worker extra): auto says so and checks nothing.
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nudenet" else real(name, *a))
    assert isinstance(image_check(Settings(_env_file=None)), NoImageCheck)


async def test_check_time_and_flagged_counts_are_metrics(tmp_path, nudenet):
    """Through the real detector and the real OpenTelemetry adapter: the check's time per picture,
    flagged pictures by category and action, prompts refused by where; on /metrics too."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from adapters.otel.metrics import OtelMetrics
    from config.safety import prompt_filter
    from config.settings import Settings

    reader = InMemoryMetricReader()
    metrics = OtelMetrics(extra_readers=[reader], system_metrics=False)
    queue = MemoryJobQueue()
    storage = LocalFolderStorage(tmp_path / "img")
    await queue.start()
    await storage.start()
    filter_ = prompt_filter(Settings(_env_file=None))
    submit = SubmitPrompt(queue, default_width=512, default_height=512, prompt_filter=filter_, metrics=metrics)
    gate = SafetyGate(prompt_filter=filter_, image_check=nudenet, action=ImageAction.SPOILER, metrics=metrics)
    worker = ProcessJobs(
        queue, SampleGenerator(), storage, max_batch=8, batch_wait_s=0.01, metrics=metrics, safety=gate
    )
    for i, prompt in enumerate([f"{MARKER} one", "a calm sea", "a hill"]):
        await submit(user_id=i, chat_id=i, prompt=prompt)
    with pytest.raises(PromptRefused):
        submit.prepare(user_id=9, chat_id=9, prompt="naked")
    await worker.run_once()
    data = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                data[metric.name] = list(metric.data.data_points)
    [duration] = data["p2p.safety.image_check.duration"]
    assert duration.count == 3 and 0 < duration.sum < 30
    flagged = {(p.attributes["category"], p.attributes["action"]): p.value for p in data["p2p.safety.images.flagged"]}
    assert flagged == {("FEMALE_BREAST_EXPOSED", "spoiler"): 1}
    refused = {(p.attributes["category"], p.attributes["where"]): p.value for p in data["p2p.safety.prompts.refused"]}
    assert refused == {("sexual", "bot"): 1}
    text = metrics.prometheus()[0].decode()
    assert "p2p_safety_image_check_duration_seconds_count" in text and "p2p_safety_images_flagged_total" in text
    metrics.shutdown()
