"""Image prompts through a model's IP-Adapter (diffusers' `load_ip_adapter` / `set_ip_adapter_scale`).

The adapter file and its CLIP image encoder are read once per model and kept in memory; the adapter
is put into the UNet for an image-prompted job only and taken out after it (`unload_ip_adapter`),
because a UNet holding one wants image embeddings on every call, from every task pipeline that
shares it (vary, inpaint, training). In a job, `--iw` scales the adapter (0 leaves the pictures out
of the result exactly), and `--sref` scales only the style layers (InstantStyle).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from safetensors.torch import load_file

from generation.config import IpAdapterConfig
from generation.errors import ModelNotFoundError, SpecError
from generation.models.loading import LoadedModel
from generation.specs.imagine import ImagePrompt

log = logging.getLogger(__name__)

# --sref at --iw 1 when the model's settings do not say: the layers InstantStyle found to carry style.
FAMILY_STYLE_SCALES: dict[str, dict[str, Any]] = {
    "sdxl": {"up": {"block_0": [0.0, 1.0, 0.0]}},
    "sd1": {"up": 1.0},  # SD 1.x has no layer that is style only; the up blocks are the closest
}


@dataclass
class ImagePromptAdapter:
    """An IP-Adapter in memory: its weights in the file's layout and its image encoder."""

    state: dict[str, dict[str, torch.Tensor]]  # "image_proj" and "ip_adapter", as load_ip_adapter reads
    encoder: Any  # transformers' CLIPVisionModelWithProjection
    settings: IpAdapterConfig


def load_image_prompt_adapter(
    settings: IpAdapterConfig, *, device: torch.device, dtype: torch.dtype, offline: bool
) -> ImagePromptAdapter:
    from huggingface_hub import hf_hub_download
    from transformers import CLIPVisionModelWithProjection

    folder = Path(settings.source).expanduser()
    local = folder.is_dir()
    try:
        if local:
            path = folder / settings.subfolder / settings.weight_name
            if not path.is_file():
                raise ModelNotFoundError(f"IP-Adapter file {path} does not exist")
        else:
            path = Path(
                hf_hub_download(
                    settings.source,
                    settings.weight_name,
                    subfolder=settings.subfolder or None,
                    local_files_only=offline,
                )
            )
        encoder_folder = (
            settings.image_encoder
            if "/" in settings.image_encoder
            else str(Path(settings.subfolder, settings.image_encoder).as_posix())
        )
        encoder: Any = CLIPVisionModelWithProjection.from_pretrained(
            settings.source,
            subfolder=encoder_folder,
            local_files_only=local or offline,
            use_safetensors=True,
            dtype=dtype,
        )
    except OSError as error:  # not there, or not cached while offline
        raise ModelNotFoundError(f"IP-Adapter {settings.source!r} could not be loaded: {error}") from None
    flat = load_file(path)
    state: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    for key, tensor in flat.items():
        part, _, rest = key.partition(".")
        if part not in state:
            raise ModelNotFoundError(f"{path.name} is not an IP-Adapter file (key {key!r})")
        state[part][rest] = tensor
    encoder.to(device).eval()
    log.info("IP-Adapter %s/%s loaded", settings.source, settings.weight_name)
    return ImagePromptAdapter(state, encoder, settings)


def adapter_of(model: LoadedModel, *, offline: bool) -> ImagePromptAdapter:
    """The model's IP-Adapter, read at its first image prompt and kept with the model."""
    settings = model.config.ip_adapter
    if settings is None:
        raise SpecError(
            f"model {model.config.name!r} has no IP-Adapter configured, so it takes no image prompts"
        )
    if model.image_prompts is None:
        dtype = getattr(model.pipeline, "dtype", torch.float32)
        model.image_prompts = load_image_prompt_adapter(
            settings, device=model.device, dtype=dtype, offline=offline
        )
    adapter: ImagePromptAdapter = model.image_prompts
    return adapter


@contextlib.contextmanager
def adapter_in(pipeline: Any, adapter: ImagePromptAdapter) -> Iterator[None]:
    """The adapter in `pipeline`'s UNet (and its image encoder in the pipeline) for the block's length."""
    from transformers import CLIPImageProcessor

    # Two warnings per job otherwise: no image encoder is loaded (ours is set below), and a dtype cast
    # of a UNet that has nothing to keep in float32.
    quiet = [
        logging.getLogger(name)
        for name in ("diffusers.loaders.ip_adapter", "diffusers.models.modeling_utils")
    ]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        pipeline.load_ip_adapter(adapter.state, subfolder=None, weight_name=None, image_encoder_folder=None)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    had_extractor = getattr(pipeline, "feature_extractor", None)  # the safety checker's, if any
    side = adapter.encoder.config.image_size  # CLIP's preprocessing at the image encoder's own size
    extractor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    pipeline.register_modules(image_encoder=adapter.encoder, feature_extractor=extractor)
    try:
        yield
    finally:
        pipeline.unload_ip_adapter()  # the UNet's own attention again: other jobs see no trace
        pipeline.register_modules(feature_extractor=had_extractor)


def image_prompt_inputs(
    pipeline: Any,
    adapter: ImagePromptAdapter,
    prompt: ImagePrompt,
    pictures: list[Image.Image],
    *,
    family: str,
    count: int,
    guided: bool,
) -> dict[str, Any]:
    """The pipeline's `ip_adapter_image_embeds` for `count` images (the pictures' tokens side by side,
    /blend's mix), with the unguided half diffusers would make, and the adapter's scale set."""
    from diffusers.models.embeddings import ImageProjection

    adapter_scale(pipeline, adapter.settings, prompt, family)
    projection = pipeline.unet.encoder_hid_proj.image_projection_layers[0]
    hidden = not isinstance(projection, ImageProjection)  # Plus adapters read the encoder's hidden states
    device = pipeline._execution_device
    embeds, negative = pipeline.encode_image([p.convert("RGB") for p in pictures], device, 1, hidden)
    embeds, negative = _per_image(embeds, count), _per_image(negative, count)
    return {"ip_adapter_image_embeds": [torch.cat([negative, embeds]) if guided else embeds]}


def _per_image(embeds: torch.Tensor, count: int) -> torch.Tensor:
    """(pictures, …) -> (count, pictures, …): every rendered image sees every picture's tokens."""
    return embeds.unsqueeze(0).expand(count, *embeds.shape).contiguous()


def adapter_scale(pipeline: Any, settings: IpAdapterConfig, prompt: ImagePrompt, family: str) -> None:
    if not prompt.style:
        pipeline.set_ip_adapter_scale(settings.scale * prompt.weight)
        return
    layers = settings.style_scales or FAMILY_STYLE_SCALES.get(family)
    if layers is None:
        raise SpecError("--sref needs style layers for this model: set its ip_adapter.style_scales")
    pipeline.set_ip_adapter_scale(_scaled(layers, prompt.weight))


def _scaled(layers: Any, factor: float) -> Any:
    if isinstance(layers, dict):
        return {key: _scaled(value, factor) for key, value in layers.items()}
    if isinstance(layers, list):
        return [_scaled(value, factor) for value in layers]
    return float(layers) * factor


# ---------------------------------------------------------------- the file layout (training, tests)
def cross_attentions(unet: Any) -> list[Any]:
    """The UNet's cross-attention modules in `attn_processors` order: the order in which an adapter
    file numbers its layers (1, 3, 5, …)."""
    modules = dict(unet.named_modules())
    return [modules[name.removesuffix(".processor")] for name in unet.attn_processors if "attn2" in name]


def fresh_adapter_state(
    unet: Any,
    embed_dim: int,
    tokens: int,
    seed: int,
    *,
    kind: ProjectionKind = "pooled",
    resampler_width: int | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """A new adapter for `unet` in the file's layout: each to_k_ip/to_v_ip a copy of its layer's text
    to_k/to_v (so image tokens start out read as text tokens are, as the IP-Adapter paper initialises
    them) and a random projection of `kind` (PROJECTION_KINDS) from `embed_dim`-wide encodings; a plus
    resampler `resampler_width` wide inside (default: the UNet's cross-attention width)."""
    generator = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    if kind == "full":
        image_proj = fresh_patch_projection(embed_dim, cross, generator)
    elif kind == "plus":
        image_proj = fresh_resampler(embed_dim, cross, tokens, seed, width=resampler_width)
    else:
        image_proj = {
            "proj.weight": torch.randn(cross * tokens, embed_dim, generator=generator) * embed_dim**-0.5,
            "proj.bias": torch.zeros(cross * tokens),
            "norm.weight": torch.ones(cross),
            "norm.bias": torch.zeros(cross),
        }
    layers: dict[str, torch.Tensor] = {}
    for index, attention in enumerate(cross_attentions(unet)):
        layers[f"{2 * index + 1}.to_k_ip.weight"] = attention.to_k.weight.detach().clone()
        layers[f"{2 * index + 1}.to_v_ip.weight"] = attention.to_v.weight.detach().clone()
    return {"image_proj": image_proj, "ip_adapter": layers}


ProjectionKind = Literal["pooled", "full", "plus"]
PROJECTION_KINDS: dict[str, str] = {  # IP-Adapter's own names for its formats, which diffusers loads
    "pooled": "IP-Adapter: the pooled image embedding -> 4 tokens",
    "full": "IP-Adapter Full: one token per hidden state of the encoder (257: CLS + 16x16 patches)",
    "plus": "IP-Adapter Plus: a resampler's queries read the encoder's hidden states -> N tokens",
}


def projection_kind(image_proj: dict[str, torch.Tensor]) -> ProjectionKind:
    """Which of PROJECTION_KINDS an adapter file's `image_proj` tensors are (diffusers' own tests)."""
    if "latents" in image_proj:
        return "plus"
    return "full" if "proj.3.weight" in image_proj else "pooled"


def fresh_resampler(
    embed_dim: int, cross: int, tokens: int, seed: int, *, width: int | None = None
) -> dict[str, torch.Tensor]:
    """IP-Adapter Plus's projection (a perceiver resampler, `tokens` queries, depth 4, heads of 64 as
    diffusers' loader assumes) in the file's layout, `width` wide inside (default `cross`; SDXL's
    Plus adapters are 1280 wide for a 2048-wide UNet: the loader reads it from the file)."""
    width = width or cross
    from diffusers.models.embeddings import IPAdapterPlusImageProjection

    with torch.random.fork_rng(
        devices=[]
    ):  # its own initialisation, seeded, the caller's generator untouched
        torch.manual_seed(seed)
        module = IPAdapterPlusImageProjection(
            embed_dims=embed_dim,
            output_dims=cross,
            hidden_dims=width,
            heads=max(width // 64, 1),
            num_queries=tokens,
        )
    return _resampler_file_names(module.state_dict())


def _resampler_file_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' IPAdapterPlusImageProjection names back to the file's (the reverse of its loader's
    renames: attention keys and values in one `to_kv`, the norms and feed-forward by position)."""
    renames = {".ln0.": ".0.norm1.", ".ln1.": ".0.norm2.", ".attn.to_q.": ".0.to_q.", ".attn.to_out.0.": ".0.to_out.",
               ".ff.0.": ".1.0.", ".ff.1.net.0.proj.": ".1.1.", ".ff.1.net.2.": ".1.3."}  # fmt: skip
    flat: dict[str, torch.Tensor] = {}
    for name, weight in state.items():
        if ".attn.to_k." in name:
            flat[name.replace(".attn.to_k.", ".0.to_kv.")] = torch.cat(
                [weight, state[name.replace("to_k", "to_v")]]
            )
            continue
        if ".attn.to_v." in name:
            continue
        for old, new in renames.items():
            name = name.replace(old, new)
        flat[name] = weight
    return flat


def fresh_patch_projection(embed_dim: int, cross: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """IP-Adapter Full's projection in its file layout (proj.0, GELU, proj.2, LayerNorm proj.3), which
    diffusers loads as IPAdapterFullImageProjection."""
    return {
        "proj.0.weight": torch.randn(embed_dim, embed_dim, generator=generator) * embed_dim**-0.5,
        "proj.0.bias": torch.zeros(embed_dim),
        "proj.2.weight": torch.randn(cross, embed_dim, generator=generator) * embed_dim**-0.5,
        "proj.2.bias": torch.zeros(cross),
        "proj.3.weight": torch.ones(cross),
        "proj.3.bias": torch.zeros(cross),
    }


POOLED_PROJECTION_NAMES = {
    "image_embeds.weight": "proj.weight", "image_embeds.bias": "proj.bias",
    "norm.weight": "norm.weight", "norm.bias": "norm.bias",
}  # fmt: skip
PATCH_PROJECTION_NAMES = {
    "ff.net.0.proj.weight": "proj.0.weight", "ff.net.0.proj.bias": "proj.0.bias",
    "ff.net.2.weight": "proj.2.weight", "ff.net.2.bias": "proj.2.bias",
    "norm.weight": "proj.3.weight", "norm.bias": "proj.3.bias",
}  # fmt: skip


def loaded_adapter_state(unet: Any) -> dict[str, torch.Tensor]:
    """The adapter in `unet` (loaded by load_ip_adapter) back in the file's flat layout."""
    projection = unet.encoder_hid_proj.image_projection_layers[0]
    # diffusers' names back to the file's (the reverse of its _convert_ip_adapter_image_proj_to_diffusers)
    if hasattr(projection, "latents"):
        state = {
            f"image_proj.{name}": weight
            for name, weight in _resampler_file_names(projection.state_dict()).items()
        }
    else:
        renames = PATCH_PROJECTION_NAMES if hasattr(projection, "ff") else POOLED_PROJECTION_NAMES
        state = {f"image_proj.{renames[name]}": weight for name, weight in projection.state_dict().items()}
    for index, attention in enumerate(cross_attentions(unet)):
        state[f"ip_adapter.{2 * index + 1}.to_k_ip.weight"] = attention.processor.to_k_ip[0].weight
        state[f"ip_adapter.{2 * index + 1}.to_v_ip.weight"] = attention.processor.to_v_ip[0].weight
    return {key: value.detach().contiguous().clone() for key, value in state.items()}
