"""Which backend runs Würstchen: torch or OpenVINO (``GENERATOR_BACKEND``), and why.

On CUDA it is always torch. ``auto`` on a CPU picks, for the CPU's capability (native bf16 or
not, the same check as ``GENERATOR_DTYPE=auto``: :func:`adapters.huggingface.torch_setup.cpu_bf16`),
the backend that was faster in the side-by-side measurements of docs/benchmarks.md (the OpenVINO
section), and torch when OpenVINO is not installed (the ``openvino`` extra).
"""

from __future__ import annotations

import importlib.util
import logging

from adapters.huggingface.hub import one_line_error
from adapters.huggingface.torch_setup import cpu_bf16, resolve_device
from domain.errors import GenerationError

log = logging.getLogger(__name__)

TORCH = "torch"
OPENVINO = "openvino"

# The winner per CPU capability (native bf16 or not), from docs/benchmarks.md's OpenVINO sections,
# real architecture, random weights, on an Intel Xeon with AMX-BF16 and AVX512-BF16 (2 cores) unless
# said otherwise:
# - native bf16: the fast profile at 512, full pipeline, torch eager bf16 then OpenVINO bf16 in one
#   run: 314.2 s against 56.9 s per image on the busy machine (mostly the load's doing), and issue
#   27's quiet per-step figures, prior step 0.87-0.92 s (torch bf16) against 0.67-0.72 s (OpenVINO);
#   at load average 2-3, one run: 20.9 s (torch) against 20.5 s (OpenVINO, restarted), 17.4 s alone;
#   OpenVINO's cost: a first start that converts (minutes) and ~2 GiB more resident memory;
# - native bf16 without AMX (AVX512-BF16 only: an AMD EPYC, Zen 4, 2 cores), the fast profile at 512
#   on one thread, the process's CPU seconds (the shared machine's load changes them least): 45.4
#   (OpenVINO bf16) against 53.7 (torch bf16); on two threads under load 7-13, 147.6 s against
#   252.6 s per image. So the same winner as with AMX; the check needs no third kind;
# - no native bf16 (f32 on both): issue 27's quiet prior step, 2.9-3.5 s (torch fp32) against
#   2.3-2.5 s (OpenVINO f32); not confirmed on an AVX2-only CPU, none was at hand.
AUTO_WINNER = {True: OPENVINO, False: OPENVINO}


def openvino_installed() -> bool:
    """Whether the ``openvino`` extra (openvino and nncf) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))


def choose_backend(
    setting: str, device: str = "auto", cpu_bf16_override: bool | None = None, tiny: bool = False
) -> tuple[str, str]:
    """``torch`` or ``openvino`` for ``GENERATOR_BACKEND=setting`` on ``GENERATOR_DEVICE=device``,
    and the reason (for the log and the metrics' ``backend_reason`` label). ``auto`` keeps the tiny
    test model (``tiny``) on torch: the measurements that decide are the real model's, and the
    tiny model's conversion (a minute) costs more than all its pictures."""
    setting = (setting or "auto").lower()
    if setting not in ("auto", TORCH, OPENVINO):
        raise one_line_error(
            GenerationError, f"GENERATOR_BACKEND={setting!r} is unknown; use auto, torch or openvino", backend=setting
        )
    if resolve_device(device).type != "cpu":
        if setting == OPENVINO:
            log.warning("GENERATOR_BACKEND=openvino runs on CPUs only; on %s the backend is torch", device)
        return TORCH, "gpu"
    if setting == TORCH:
        return TORCH, "explicit"
    if setting == OPENVINO:
        if not openvino_installed():
            raise one_line_error(
                GenerationError,
                'GENERATOR_BACKEND=openvino needs the openvino extra: pip install -e ".[worker,openvino]"',
                backend=setting,
            )
        return OPENVINO, "explicit"
    if tiny:
        return TORCH, "tiny-model"
    if not openvino_installed():
        return TORCH, "openvino-not-installed"
    native, why = cpu_bf16(cpu_bf16_override)
    winner = AUTO_WINNER[native]
    return winner, f"{why}-{winner}-measured-faster"
