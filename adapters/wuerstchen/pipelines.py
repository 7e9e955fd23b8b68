"""The prior and decoder pipelines, built from their parts, and one pipeline call of a batch.

Each request of a batch keeps its own prompt, negative prompt and seed (one ``torch.Generator`` per
request, used for its initial noise and its sampler noise), so an image made in a batch matches the
one the same request makes alone, up to floating point rounding. The stock decoder pipeline repeats
the text embeddings of a list of prompts by the batch size (a batch of 2 different prompts
crashes); ``BatchDecoderPipeline`` fixes that. Attention runs through PyTorch's fused
``scaled_dot_product_attention``; on GPUs the prior's and decoder's weights are kept in the
channels-last layout (``set_channels_last``), which suits their depth-wise convolutions and the
channel-wise layers that follow them. The VQGAN, whose convolutions run at the image's full
size, is kept channels-last on CPUs too (``set_vqgan_channels_last``): oneDNN's convolutions
there are about twice as fast in that layout (docs/benchmarks.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from adapters.wuerstchen.batching import group_key, model_size
from domain.models import GenerationRequest

# Defaults of the pipelines, used when a repository has no model_index.json.
PRIOR_DEFAULTS = {"latent_mean": 42.0, "latent_std": 1.0, "resolution_multiple": 42.67}
DECODER_DEFAULTS = {"latent_dim_scale": 10.67}


def prior_timesteps(steps: int) -> list[float]:
    """The prior's timesteps for ``steps`` model evaluations.

    29 gives diffusers' ``DEFAULT_STAGE_C_TIMESTEPS`` exactly (19 evaluations from t=1 to 2/3, then
    10 down to 0); other counts keep the same shape, two thirds of the steps spent on the first
    third of the noise schedule."""
    if steps < 1:
        raise ValueError("prior steps must be at least 1")
    if steps == 1:
        return [1.0, 0.0]
    first = min(steps - 1, max(1, round(steps * 19 / 29)))
    second = steps - first
    head = [1.0 - (1.0 / 3.0) * i / first for i in range(first + 1)]
    tail = [(2.0 / 3.0) * (1.0 - j / second) for j in range(1, second + 1)]
    return head + tail


class Cancelled(Exception):
    """Raised inside the pipeline (from the step callback) when the caller gave up."""


def batch_decoder_class() -> type:
    """``WuerstchenDecoderPipeline`` with the batch fix (a class made on first use: diffusers is
    imported only when a model is loaded)."""
    # From its own module: mypy sees the package's name as a placeholder.
    from diffusers.pipelines.deprecated.wuerstchen.pipeline_wuerstchen import WuerstchenDecoderPipeline

    class BatchDecoderPipeline(WuerstchenDecoderPipeline):
        """``WuerstchenDecoderPipeline`` that takes one prompt per image embedding.

        The stock ``__call__`` passes ``image_embeddings.size(0) * num_images_per_prompt`` to
        ``encode_prompt`` as the repeat count of every prompt, which is right for one prompt and
        several embeddings but repeats a list of B prompts B times (B*B rows: a size mismatch).
        Here the count is shared out over the prompts, so a list of B prompts with B embeddings gives
        B rows in order, and one prompt still covers all the embeddings."""

        def encode_prompt(
            self, prompt, device, num_images_per_prompt, do_classifier_free_guidance, negative_prompt=None
        ):
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            total = int(num_images_per_prompt)
            if total % len(prompts):
                raise ValueError(f"{len(prompts)} prompts cannot be shared out over {total} image embeddings")
            if negative_prompt is not None and isinstance(negative_prompt, str):
                negative_prompt = [negative_prompt] * len(prompts)
            return super().encode_prompt(
                prompts, device, total // len(prompts), do_classifier_free_guidance, negative_prompt
            )

    return BatchDecoderPipeline


class Pipelines(NamedTuple):
    """The prior pipeline and the (fixed) decoder pipeline of one model."""

    prior_pipe: Any
    decoder_pipe: Any

    def denoise(
        self,
        requests: Sequence[GenerationRequest],
        on_step: Callable[[], None] = lambda: None,
        cancel: threading.Event | None = None,
    ) -> Any:
        """Prior then decoder for requests that share size, steps and guidance, blocking: an
        (N, H, W, 3) uint8 array at the size rounded up to a multiple of 128. ``on_step`` is called
        after every step of either pipeline; a set ``cancel`` stops the call at its next step
        (``Cancelled``)."""
        import torch

        first = requests[0]
        if any(group_key(r) != group_key(first) for r in requests):
            raise ValueError("one pipeline call needs requests of one size, steps and guidance")
        width, height = model_size(first.width, first.height)

        def callback(pipe, i, t, kwargs):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            on_step()
            return {}

        # One generator per request: its noise does not depend on the other requests of the batch.
        # CPU generators give the same noise for a seed on every device.
        generators = [torch.Generator("cpu").manual_seed(r.seed) for r in requests]
        prompts = [r.prompt for r in requests]
        negatives = [r.negative_prompt for r in requests]
        with torch.inference_mode():
            embeddings = self.prior_pipe(
                prompt=prompts,
                negative_prompt=negatives if first.prior_guidance > 1 else None,
                height=height,
                width=width,
                timesteps=prior_timesteps(first.prior_steps),
                guidance_scale=first.prior_guidance,
                generator=generators,
                output_type="pt",
                callback_on_step_end=callback,
            ).image_embeddings
            images = self.decoder_pipe(
                image_embeddings=embeddings,
                prompt=prompts,
                negative_prompt=negatives if first.decoder_guidance > 1 else None,
                num_inference_steps=first.decoder_steps,
                guidance_scale=first.decoder_guidance,
                generator=generators,
                output_type="pt",
                callback_on_step_end=callback,
            ).images
            return (images.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def set_channels_last(self, enabled: bool) -> None:
        """The prior's and decoder's weights in the channels-last layout, or back to the usual one."""
        set_channels_last(enabled, self.prior_pipe.prior, self.decoder_pipe.decoder)

    def set_vqgan_channels_last(self, enabled: bool) -> None:
        """The VQGAN's weights in the channels-last layout, or back to the usual one."""
        set_channels_last(enabled, self.decoder_pipe.vqgan)


def make_pipelines(
    *,
    prior_tokenizer: Any,
    prior_text_encoder: Any,
    prior: Any,
    prior_scheduler: Any,
    decoder_tokenizer: Any,
    decoder_text_encoder: Any,
    decoder: Any,
    decoder_scheduler: Any,
    vqgan: Any,
    prior_config: dict[str, float] | None = None,
    decoder_config: dict[str, float] | None = None,
    device: Any = None,
) -> Pipelines:
    """Build the prior pipeline and the (fixed) decoder pipeline from their parts, on ``device``,
    with fused attention and no progress bars."""
    from diffusers.pipelines.deprecated.wuerstchen import WuerstchenPriorPipeline

    # Any: diffusers registers a pipeline's components (.prior, .decoder ...) at run time.
    prior_pipe: Any = WuerstchenPriorPipeline(
        tokenizer=prior_tokenizer,
        text_encoder=prior_text_encoder,
        prior=prior,
        scheduler=prior_scheduler,
        **(prior_config or PRIOR_DEFAULTS),
    )
    decoder_pipe = batch_decoder_class()(
        tokenizer=decoder_tokenizer,
        text_encoder=decoder_text_encoder,
        decoder=decoder,
        scheduler=decoder_scheduler,
        vqgan=vqgan,
        **(decoder_config or DECODER_DEFAULTS),
    )
    for pipe in (prior_pipe, decoder_pipe):
        if device is not None:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
    use_fused_attention(prior_pipe.prior, decoder_pipe.decoder)
    return Pipelines(prior_pipe, decoder_pipe)


def use_fused_attention(*models: Any) -> None:
    """Route the models' attention through ``torch.nn.functional.scaled_dot_product_attention``
    (the Würstchen models install diffusers' plain ``AttnProcessor`` by default)."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    for model in models:
        for module in model.modules():
            if isinstance(module, Attention):
                # diffusers annotates AttnProcessor only; set_processor takes every processor class
                module.set_processor(AttnProcessor2_0())  # type: ignore[arg-type]


def set_channels_last(enabled: bool, *models: Any) -> None:
    """Put the models' 4-D weights in the channels-last (NHWC) layout, or back to the usual one.

    Convolutions with channels-last weights give channels-last outputs, so the Würstchen blocks'
    ``permute(0, 2, 3, 1)`` before each channel-wise linear layer (and the layer norms) read
    contiguous memory instead of copying, and cuDNN picks its NHWC kernels."""
    import torch

    layout = torch.channels_last if enabled else torch.contiguous_format
    for model in models:
        torch.nn.Module.to(model, memory_format=layout)
