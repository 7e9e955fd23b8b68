"""Batching: which requests go through the pipelines together, and at which batch sizes.

Requests of different users are denoised in one pipeline call when they share size, steps and
guidance (each keeps its own prompt, negative prompt and seed); others are split into groups that
run one after the other, as are calls larger than ``max_batch``. With static-shape compilation
every new (batch, size) compiles for minutes, so :class:`ShapeBuckets` pads a batch up to a
warmed-up batch size of its size (the padding's images are dropped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from domain.models import GenerationRequest

log = logging.getLogger(__name__)

# The model's size step: the prior works at 1/42.67 of the image size, the decoder at 1/4. Other
# sizes are generated at the next multiple up and resized.
SIZE_MULTIPLE = 128


def model_size(width: int, height: int) -> tuple[int, int]:
    """The size the model works at: each side rounded up to a multiple of 128."""
    return -(-width // SIZE_MULTIPLE) * SIZE_MULTIPLE, -(-height // SIZE_MULTIPLE) * SIZE_MULTIPLE


def group_key(r: GenerationRequest) -> tuple:
    """What requests must share to go through one pipeline call."""
    return (r.width, r.height, r.prior_steps, r.decoder_steps, r.prior_guidance, r.decoder_guidance)


@dataclass
class Group:
    """Requests for one pipeline call, and their places in the call they came in."""

    indices: list[int]
    requests: list[GenerationRequest]

    @property
    def steps(self) -> int:
        return self.requests[0].prior_steps + self.requests[0].decoder_steps


def plan_groups(
    requests: Sequence[GenerationRequest],
    max_batch: int,
    limit: Callable[[int, int], int] | None = None,
) -> list[Group]:
    """Split a call into batches that share size, steps and guidance, at most ``max_batch`` each
    (or ``limit(width, height)`` when given), in the order the requests came."""
    by_key: dict[tuple, Group] = {}
    groups: list[Group] = []
    for i, request in enumerate(requests):
        key = group_key(request)
        cap = max(1, limit(request.width, request.height)) if limit else max_batch
        group = by_key.get(key)
        if group is None or len(group.requests) >= cap:
            group = Group([], [])
            by_key[key] = group
            groups.append(group)
        group.indices.append(i)
        group.requests.append(request)
    return groups


def parse_warmup(text: str) -> list[tuple[int, int, int]]:
    """Warm-up combinations from a setting: ``"1x1024x1024,8x1024x1024,4x512x512"`` (batch x width
    x height, comma separated); empty gives none."""
    combos = []
    for item in text.replace(";", ",").split(","):
        item = item.strip().lower()
        if not item:
            continue
        try:
            batch, width, height = (int(v) for v in item.split("x"))
        except ValueError:
            raise ValueError(f"warm-up item {item!r} is not BATCHxWIDTHxHEIGHT") from None
        if batch < 1 or width < 1 or height < 1:
            raise ValueError(f"warm-up item {item!r} must be positive")
        combos.append((batch, width, height))
    return combos


class ShapeBuckets:
    """The batch sizes warmed up (and so compiled for) at each model size; none without
    compilation, and then batches are not padded."""

    def __init__(self, shapes: Sequence[tuple[int, int, int]] = ()) -> None:
        self._sizes: dict[tuple[int, int], list[int]] = {}
        for batch, width, height in shapes:
            self._sizes.setdefault(model_size(width, height), []).append(batch)
        for batches in self._sizes.values():
            batches.sort()
        self._warned: set[tuple[int, int]] = set()

    def batch_limit(self, width: int, height: int, max_batch: int) -> int:
        """The largest batch one pipeline call makes at this size: ``max_batch``, or the largest
        warmed-up batch of the size (if it was warmed up at all)."""
        batches = self._sizes.get(model_size(width, height))
        return min(max_batch, batches[-1]) if batches else max_batch

    def pad(self, requests: Sequence[GenerationRequest]) -> list[GenerationRequest]:
        """``requests`` padded up to the smallest warmed-up batch size that holds them, so a
        compiled model meets only shapes it has compiled for. Without buckets: unchanged."""
        requests = list(requests)
        first = requests[0]
        batches = self._sizes.get(model_size(first.width, first.height))
        if not batches:
            if self._sizes and (first.width, first.height) not in self._warned:
                self._warned.add((first.width, first.height))
                log.warning(
                    "%dx%d was not warmed up: the compiled model compiles for it now (minutes)",
                    first.width,
                    first.height,
                )
            return requests
        target = next((b for b in batches if b >= len(requests)), len(requests))
        filler = requests[-1]
        return requests + [
            filler.model_copy(update={"seed": (filler.seed + k + 1) % 2**32}) for k in range(target - len(requests))
        ]
