"""torch's device, dtype and CPU threads for a model, from the settings' words (``auto``, ``cpu``,
``cuda:1``, ``bf16`` ...)."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from adapters.huggingface.hub import one_line_error
from domain.errors import GenerationError

log = logging.getLogger(__name__)


def default_threads() -> int:
    """CPU threads for torch: the physical cores this process may use (affinity and cgroup quota
    taken into account), at least 1."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or available
    except (ImportError, OSError):
        physical = available
    threads = min(available, physical)
    try:  # cgroup v2 quota, e.g. a container limited to 2 CPUs on a 64-core host
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            threads = min(threads, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, threads)


def resolve_device(device: str) -> Any:
    """``auto``: CUDA if there is a GPU, else the CPU; otherwise the named torch device."""
    import torch

    if device in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise one_line_error(
            GenerationError,
            f"GENERATOR_DEVICE={device!r} asks for CUDA but no CUDA GPU is available here; use auto or cpu",
            device=device,
        )
    return dev


_DTYPES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
}


def resolve_dtype(dtype: str, device: Any) -> Any:
    """``auto``: bfloat16 on a GPU that has it, float32 otherwise (fp16 overflows in the decoder)."""
    import torch

    if dtype in ("", "auto"):
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        resolved = getattr(torch, _DTYPES[dtype.lower()])
    except KeyError:
        raise one_line_error(
            GenerationError, f"GENERATOR_DTYPE={dtype!r} is unknown; use auto, bf16, fp16 or fp32", dtype=dtype
        ) from None
    if resolved == torch.float16:
        log.warning("float16 is known to overflow in the Würstchen decoder; prefer bf16")
    return resolved
