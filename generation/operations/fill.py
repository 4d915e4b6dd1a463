"""Flux Fill for Vary (Region), zoom and pans, when a Flux model's config names one (`fill = …`).

FLUX.1 Fill is a transformer trained to paint inside a mask from the picture around it, far better
at seams than the base model's generic inpaint pipeline. Only its transformer is loaded: the VAE and
both text encoders are the base model's own (`from_pipe`), so it costs one transformer of memory.
"""

from __future__ import annotations

import logging
from typing import Any

from diffusers import FluxFillPipeline, FluxTransformer2DModel

from generation.errors import ModelLoadError
from generation.models.file_pipelines import flux_file_transformer
from generation.models.loading import LoadedModel
from generation.models.single_file import is_single_file
from generation.models.sources import hub_offline, resolve_source

log = logging.getLogger(__name__)

FILL_GUIDANCE = 30.0  # what Black Forest Labs recommend for FLUX.1 Fill (3.5 leaves the hole blurry)


def fill_pipeline(model: LoadedModel) -> Any:
    """The model's Fill pipeline, loaded on first use and kept with the model."""
    if "fill" not in model.extras:
        source = model.config.fill
        assert source is not None
        base = model.pipeline
        if is_single_file(source):  # BFL's flux1-fill-dev.safetensors: the transformer alone
            transformer = flux_file_transformer(source, dict(base.transformer.config), base.transformer.dtype)
        else:
            where, local_only = resolve_source(source, offline=hub_offline())
            try:
                transformer = FluxTransformer2DModel.from_pretrained(
                    where, subfolder="transformer", dtype=base.transformer.dtype, local_files_only=local_only
                )
            except (OSError, ValueError) as error:
                raise ModelLoadError(f"could not load the Fill model {source!r}: {error}") from error
        if transformer.config.in_channels <= base.transformer.config.in_channels:
            raise ModelLoadError(f"{source!r} is not a Flux Fill model (its transformer takes no mask)")
        pipeline = FluxFillPipeline.from_pipe(base, transformer=transformer.to(model.device))
        pipeline.set_progress_bar_config(disable=True)
        model.extras["fill"] = pipeline
        log.info("loaded Fill model %s for %s", source, model.config.name)
    return model.extras["fill"]
