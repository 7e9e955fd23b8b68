"""The Würstchen models as OpenVINO models: converted once, kept on disk, compiled per shape.

Each heavy part (the two CLIP text encoders, the prior, the decoder, the VQGAN's decoder) is
converted from the very torch module the torch adapter loads, with ``openvino.convert_model``,
optionally with NNCF's int8 weight compression, and saved as IR (``.xml`` + ``.bin``) in a folder
whose name is a hash of what the result depends on (the weights' files, the part's config, the
weight format, the OpenVINO and NNCF versions): a restarted worker finds it and converts nothing,
a new revision or weight format converts anew. The IR keeps its input shapes dynamic; an
:class:`OvPart` reads it once and compiles it for each set of input shapes it meets (static shapes
are faster on a CPU than dynamic ones), with OpenVINO's model cache (``CACHE_DIR``) beside the IR,
so a restart loads the compiled blobs instead of compiling again.

The thin wrappers (:class:`OvTextEncoder`, :class:`OvPrior`, :class:`OvDecoder`, :class:`OvVqgan`)
take and return torch tensors and stand in the diffusers pipelines where the torch modules were:
the scheduler, guidance, batching and seeds stay the pipelines' own.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

log = logging.getLogger(__name__)

# Bump when the conversion itself changes (wrappers, example inputs): old IR is then converted anew.
CONVERSION_VERSION = 2

HEAVY_PARTS = ("prior_text", "prior", "decoder_text", "decoder", "vqgan")


@dataclass(frozen=True)
class Precision:
    """How the models run: ``inference`` is OpenVINO's ``INFERENCE_PRECISION_HINT`` (``bf16`` or
    ``f32``); ``int8_weights`` compresses the weights with NNCF. The IR is stored in f16 for a bf16
    run (half the disk, and bf16 rounds more coarsely anyway), in f32 for an f32 run."""

    inference: str = "f32"
    int8_weights: bool = False

    @property
    def weight_format(self) -> str:
        if self.int8_weights:
            return "int8"
        return "f32" if self.inference == "f32" else "f16"


@dataclass
class Counters:
    """What this process did: conversions, compilations, and compiled models read from the cache
    (tests assert that a restart converts and compiles nothing)."""

    converted: list[str] = field(default_factory=list)
    compiled: list[str] = field(default_factory=list)
    from_cache: list[str] = field(default_factory=list)
    convert_seconds: float = 0.0
    compile_seconds: float = 0.0


def versions() -> dict[str, str]:
    import nncf
    import openvino

    return {"openvino": openvino.__version__, "nncf": nncf.__version__, "conversion": str(CONVERSION_VERSION)}


def weights_signature(folder: Path) -> list[tuple[str, int, int]]:
    """The part's files as (name, size, mtime): a new revision or a rewritten checkpoint differs."""
    if not folder.is_dir():
        return []
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())


def ir_key(part: str, source: dict[str, Any], precision: Precision) -> str:
    """The IR folder's name for ``part``: a hash of its source (weights, config), the weight
    format and the versions that shape the conversion."""
    payload = json.dumps(
        {"part": part, "source": source, "weights": precision.weight_format, **versions()}, sort_keys=True, default=str
    )
    return f"{part}-{precision.weight_format}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


class IrStore:
    """The converted models under ``root`` (one folder per part and key) and OpenVINO's compiled
    model cache beside them; ``core_config`` is passed to every compilation."""

    def __init__(self, root: Path, precision: Precision, threads: int = 0) -> None:
        import openvino as ov

        self.root = Path(root)
        self.precision = precision
        self.core = ov.Core()
        self.counters = Counters()
        self.core_config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": precision.inference,
            "PERFORMANCE_HINT": "LATENCY",
            "CACHE_DIR": str(self.root / "compiled"),
        }
        if threads:
            self.core_config["INFERENCE_NUM_THREADS"] = threads

    def part(
        self,
        part: str,
        source: dict[str, Any],
        load: Callable[[], Any],
        example: Callable[[Any], tuple[Any, Any]],
    ) -> OvPart:
        """The compiled-on-demand model of ``part``: the IR under its key when it is there, else
        ``load()`` (the torch module), converted with ``example(module)`` (the wrapper to trace
        and its example inputs), saved, and the torch module let go before the next part loads."""
        folder = self.root / ir_key(part, source, self.precision)
        xml = folder / "model.xml"
        if not xml.is_file():
            self._convert(part, folder, load, example)
        else:
            log.info("OpenVINO %s: converted model found in %s", part, folder)
        return OvPart(part, self.core, xml, self.core_config, self.counters)

    def _convert(
        self, part: str, folder: Path, load: Callable[[], Any], example: Callable[[Any], tuple[Any, Any]]
    ) -> None:
        import openvino as ov
        import torch

        started = time.perf_counter()
        module = load()
        traced, inputs = example(module)
        with torch.inference_mode(False), torch.no_grad():
            model = ov.convert_model(traced, example_input=inputs)
        del traced, module  # the OpenVINO model shares the torch weights until it is saved
        if self.precision.int8_weights:
            import nncf

            model = nncf.compress_weights(model)  # int8 weights, per channel (NNCF's default)
        # Saved into a private folder, then renamed: a crash or a second process never leaves half an IR.
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{threading.get_ident()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        ov.save_model(model, tmp / "model.xml", compress_to_fp16=self.precision.weight_format == "f16")
        del model
        gc.collect()
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first: its IR is the same
            shutil.rmtree(tmp, ignore_errors=True)
        seconds = time.perf_counter() - started
        self.counters.converted.append(part)
        self.counters.convert_seconds += seconds
        log.info("OpenVINO %s: converted in %.1fs into %s", part, seconds, folder)


class OvPart:
    """One converted model, compiled for each set of input shapes it is called with (static
    shapes), through the on-disk model cache."""

    def __init__(self, name: str, core: Any, xml: Path, config: dict[str, Any], counters: Counters) -> None:
        self.name = name
        self.core = core
        self.xml = xml
        self.config = config
        self.counters = counters
        self._model: Any = None
        self._compiled: dict[tuple[tuple[int, ...], ...], Any] = {}

    @property
    def shapes(self) -> list[tuple[tuple[int, ...], ...]]:
        """The input shapes compiled for so far."""
        return list(self._compiled)

    def compiled_for(self, shapes: tuple[tuple[int, ...], ...]) -> Any:
        compiled = self._compiled.get(shapes)
        if compiled is not None:
            return compiled
        import openvino as ov

        started = time.perf_counter()
        if self._model is None:
            self._model = self.core.read_model(self.xml)
        self._model.reshape(
            {port.get_any_name(): ov.PartialShape(list(s)) for port, s in zip(self._model.inputs, shapes, strict=True)}
        )
        compiled = self.core.compile_model(self._model, "CPU", self.config)
        self._model = None  # read again (memory-mapped, cheap) for another shape; not held meanwhile
        seconds = time.perf_counter() - started
        cached = bool(compiled.get_property("LOADED_FROM_CACHE"))
        (self.counters.from_cache if cached else self.counters.compiled).append(f"{self.name}{list(shapes)}")
        self.counters.compile_seconds += seconds
        how = "read from the cache" if cached else "compiled"
        log.info("OpenVINO %s for %s: %s in %.1fs", self.name, shapes, how, seconds)
        self._compiled[shapes] = compiled
        return compiled

    def __call__(self, *arrays: Any) -> Any:
        """Run on numpy arrays (or torch tensors); the first output as a new torch tensor."""
        import numpy as np
        import torch

        values = [a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a) for a in arrays]
        compiled = self.compiled_for(tuple(tuple(int(d) for d in v.shape) for v in values))
        result = compiled(values)[0]
        return torch.from_numpy(np.array(result, dtype=np.float32))  # a copy: the request reuses its memory


# --------------------------------------------------------------------------- wrappers for tracing


def _float(x: Any) -> Any:
    return x.float()


def text_example(module: Any) -> tuple[Any, Any]:
    """A CLIP text encoder returning its last hidden state, and example token ids."""
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.encoder(input_ids, attention_mask=attention_mask).last_hidden_state

    tokens = int(module.config.max_position_embeddings)
    ids = torch.ones(1, tokens, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[:, tokens // 2 :] = 0  # padding in the example, so that the trace keeps the mask's path
    return LastHidden(module.float().eval()), {"input_ids": ids, "attention_mask": mask}


def prior_example(module: Any) -> tuple[Any, Any]:
    import torch

    from adapters.wuerstchen.pipelines import use_fused_attention

    use_fused_attention(module)  # one fused attention op for OpenVINO to map, as torch runs it
    config = module.config
    return module.float().eval(), {
        "x": torch.randn(2, config.c_in, 3, 3),
        "r": torch.rand(2),
        "c": torch.randn(2, 77, config.c_cond),
    }


def effnet_levels(config: Any) -> list[int]:
    """The decoder levels that take the prior's image embedding (``inject_effnet``)."""
    return [level for level, inject in enumerate(config.inject_effnet) if inject]


def effnet_inputs(config: Any, effnet: Any, height: int, width: int) -> list[Any]:
    """The prior's embedding resized to each injecting level of a ``height`` x ``width`` latent,
    exactly as ``WuerstchenDiffNeXt`` resizes it (bicubic with antialiasing, which OpenVINO's
    Interpolate does not reproduce: that resize runs in torch, on 16 channels, and the results are
    the converted decoder's inputs)."""
    import torch

    patch = int(config.patch_size)
    return [
        torch.nn.functional.interpolate(
            effnet.float(),
            size=(height // patch // 2**level, width // patch // 2**level),
            mode="bicubic",
            antialias=True,
            align_corners=True,
        )
        for level in effnet_levels(config)
    ]


def decoder_example(module: Any) -> tuple[Any, Any]:
    """The decoder taking its resized embeddings as inputs (``effnet_inputs``): while it is
    traced, its ``interpolate`` calls return the input of the size they ask for."""
    import torch

    from adapters.wuerstchen.pipelines import use_fused_attention

    class Decoder(torch.nn.Module):
        def __init__(self, decoder: Any) -> None:
            super().__init__()
            self.decoder = decoder

        def forward(self, x: Any, r: Any, clip: Any, *levels: Any) -> Any:
            by_size = {tuple(int(d) for d in level.shape[-2:]): level for level in levels}
            functional = torch.nn.functional
            original = functional.interpolate

            def resized(input: Any, size: Any = None, **_: Any) -> Any:
                return by_size[tuple(int(d) for d in size)]

            functional.interpolate = resized  # type: ignore[assignment]
            try:
                return self.decoder(x, r=r, effnet=levels[0], clip=clip)
            finally:
                functional.interpolate = original

    use_fused_attention(module)  # one fused attention op for OpenVINO to map, as torch runs it
    config = module.config
    x = torch.randn(1, config.c_in, 64, 64)
    levels = effnet_inputs(config, torch.randn(1, config.effnet_embd, 6, 6), 64, 64)
    # Positional: the levels are variadic (as many as the config injects).
    inputs = (x, torch.rand(1), torch.randn(1, 77, config.clip_embd), *levels)
    return Decoder(module.float().eval()), inputs


def vqgan_example(module: Any) -> tuple[Any, Any]:
    import torch

    class Decode(torch.nn.Module):
        def __init__(self, vqgan: Any) -> None:
            super().__init__()
            self.vqgan = vqgan

        def forward(self, latents: Any) -> Any:
            return self.vqgan.decode(latents).sample

    return Decode(module.float().eval()), {"latents": torch.randn(1, module.config.latent_channels, 32, 32)}


EXAMPLES: dict[str, Callable[[Any], tuple[Any, Any]]] = {
    "prior_text": text_example,
    "prior": prior_example,
    "decoder_text": text_example,
    "decoder": decoder_example,
    "vqgan": vqgan_example,
}


# --------------------------------------------------------------------------- stand-ins in the pipelines


class OvTextEncoder:
    """Stands in for ``CLIPTextModel``: called with token ids and a mask, gives
    ``.last_hidden_state`` (float32)."""

    def __init__(self, part: OvPart) -> None:
        import torch

        self.part = part
        self.dtype = torch.float32

    def __call__(self, input_ids: Any, attention_mask: Any = None, **_: Any) -> Any:
        import torch

        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        return SimpleNamespace(last_hidden_state=self.part(input_ids.long(), mask.long()))


class OvPrior:
    """Stands in for ``WuerstchenPrior``: ``prior(x, r=, c=)``, and its ``config``."""

    def __init__(self, part: OvPart, config: Any) -> None:
        import torch

        self.part, self.config, self.dtype = part, config, torch.float32

    def __call__(self, x: Any, r: Any, c: Any) -> Any:
        return self.part(_float(x), _float(r), _float(c))


class OvDecoder:
    """Stands in for ``WuerstchenDiffNeXt``: ``decoder(x, r=, effnet=, clip=)``, and its ``config``."""

    def __init__(self, part: OvPart, config: Any) -> None:
        import torch

        self.part, self.config, self.dtype = part, config, torch.float32

    def __call__(self, x: Any, r: Any, effnet: Any, clip: Any) -> Any:
        levels = effnet_inputs(self.config, effnet, int(x.shape[-2]), int(x.shape[-1]))
        return self.part(_float(x), _float(r), _float(clip), *levels)


class OvVqgan:
    """Stands in for ``PaellaVQModel``: ``vqgan.decode(latents).sample``, and its ``config``."""

    def __init__(self, part: OvPart, config: Any) -> None:
        import torch

        self.part, self.config, self.dtype = part, config, torch.float32

    def decode(self, latents: Any, **_: Any) -> Any:
        return SimpleNamespace(sample=self.part(_float(latents)))
