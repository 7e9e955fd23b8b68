"""torch's device, dtype and CPU threads for a model, from the settings' words (``auto``, ``cpu``,
``cuda:1``, ``bf16`` ...), and what the CPU can do (its name, its flags, native bf16)."""

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


# CPU features whose bf16 matrix units make bfloat16 faster than float32 (torch's names, which
# are also /proc/cpuinfo's): AMX tiles (Sapphire Rapids and later) and AVX512-BF16 (Cooper Lake,
# Zen 4 and later). A CPU with AVX2 only, or AVX512 without BF16, emulates bf16 and runs slower
# than fp32 (docs/benchmarks.md).
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")

# A test and diagnostic override of the CPU check: 1 acts as if the CPU had native bf16, 0 as if
# it had not. Not a setting: GENERATOR_DTYPE chooses the dtype; this only replaces the detection.
CPU_BF16_ENV = "P2P_CPU_BF16"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as torch detects them (``torch.cpu.get_capabilities()``, its
    cpuinfo), or from /proc/cpuinfo where that torch function is missing."""
    try:
        import torch

        capabilities = torch.cpu.get_capabilities()
        return frozenset(name for name, value in capabilities.items() if value is True)
    except (ImportError, AttributeError, RuntimeError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo, else the platform's)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_bf16(override: bool | None = None) -> tuple[bool, str]:
    """Whether this CPU runs bfloat16 natively, and why: its flags (``amx_bf16``,
    ``avx512_bf16``) and oneDNN's bf16 support, as torch reports them. ``override`` (or the
    ``P2P_CPU_BF16`` environment variable, 0 or 1) replaces the detection, for tests and
    diagnosis."""
    if override is None:
        env = os.environ.get(CPU_BF16_ENV, "").strip()
        if env in ("0", "1"):
            return env == "1", f"{CPU_BF16_ENV}={env}"
    else:
        return override, f"override={int(override)}"
    import torch

    native = [flag for flag in NATIVE_BF16_FLAGS if flag in cpu_flags()]
    if not native:
        return False, "cpu-without-native-bf16"
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return False, "onednn-without-bf16"
    return True, "cpu-" + "+".join(native)


def choose_dtype(dtype: str, device: Any, cpu_bf16_override: bool | None = None) -> tuple[Any, str]:
    """The torch dtype for ``dtype`` on ``device``, and the reason, for the log and the metrics.

    ``auto``: bfloat16 on a GPU that has it; on a CPU, bfloat16 where the CPU has native bf16
    (AMX or AVX512-BF16, see ``cpu_bf16``), float32 elsewhere (emulated bf16 is slower there;
    fp16 overflows in the decoder). A named dtype always wins (reason ``explicit``)."""
    import torch

    if dtype in ("", "auto"):
        if device.type == "cuda":
            if torch.cuda.is_bf16_supported():
                return torch.bfloat16, "cuda-bf16"
            return torch.float32, "cuda-without-bf16"
        if device.type == "cpu":
            native, why = cpu_bf16(cpu_bf16_override)
            return (torch.bfloat16 if native else torch.float32), why
        return torch.float32, f"{device.type}-default"
    try:
        resolved = getattr(torch, _DTYPES[dtype.lower()])
    except KeyError:
        raise one_line_error(
            GenerationError, f"GENERATOR_DTYPE={dtype!r} is unknown; use auto, bf16, fp16 or fp32", dtype=dtype
        ) from None
    if resolved == torch.float16:
        log.warning("float16 is known to overflow in the Würstchen decoder; prefer bf16")
    return resolved, "explicit"


def resolve_dtype(dtype: str, device: Any) -> Any:
    """``auto``: bfloat16 on a GPU that has it, float32 on any CPU (the translator's rule: its
    greedy decoding is cheap in fp32 and keeps its words); otherwise the named dtype. The
    generator uses ``choose_dtype``, which takes bf16 on CPUs with native bf16."""
    return choose_dtype(dtype, device, cpu_bf16_override=False)[0]
