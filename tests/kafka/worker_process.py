"""A worker as a real process, for the test that kills one with SIGKILL in the middle of a job.

    python -m tests.kafka.worker_process BOOTSTRAP IMAGES_DIR --options JSON [--step-delay S]

Runs ProcessJobs on KafkaJobQueue (queue options as JSON: the test's topics and groups) with a
slow fake generator. Prints ``READY`` once it owns partitions and ``STARTED <prompt>`` when it
starts generating, so the test knows when to kill it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal

from adapters.embedded.generator import FakeGenerator
from adapters.embedded.storage import LocalFolderStorage
from adapters.kafka.queue import KafkaJobQueue
from domain.use_cases import ProcessJobs


class AnnouncingGenerator(FakeGenerator):
    async def generate(self, requests, progress=None):
        for request in requests:
            print(f"STARTED {request.prompt}", flush=True)
        return await super().generate(requests, progress)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("images")
    parser.add_argument("--options", default="{}")
    parser.add_argument("--step-delay", type=float, default=1.0)
    parser.add_argument("--worker-id", default="doomed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="worker_process %(levelname)s %(name)s: %(message)s")

    queue = KafkaJobQueue(args.bootstrap, **json.loads(args.options))
    await queue.start()
    storage = LocalFolderStorage(args.images)
    await storage.start()
    worker = ProcessJobs(
        queue,
        AnnouncingGenerator(step_delay_s=args.step_delay),
        storage,
        worker_id=args.worker_id,
        poll_timeout_s=0.2,
        batch_wait_s=0.0,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def announce_ready() -> None:
        while True:
            if queue.worker_partitions():
                print("READY", flush=True)
                return
            await asyncio.sleep(0.05)

    ready = asyncio.create_task(announce_ready())
    await worker.run(stop)
    ready.cancel()
    await queue.stop()


if __name__ == "__main__":
    asyncio.run(main())
