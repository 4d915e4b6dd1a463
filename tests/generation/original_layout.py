"""Test helpers: tiny SD 1.x / SDXL pipelines built the way real checkpoints are (CLIP's tokenizer,
heads 64 wide, 32 norm groups), and their weights written as one file in the original (LDM/A1111)
key layout, the reverse of what diffusers' `from_single_file` reads.

Written for the tests from the layouts' structure (per UNet level: `layers` res-blocks with their
transformers, then a downsampler), not from diffusers' conversion scripts, so that a mistake in
either direction shows up as a failed round trip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from generation.models.single_file import ORIGINAL_CONFIGS
from generation.models.tiny import sd_noise_schedule

Weights = dict[str, torch.Tensor]


def clip_tokenizer(pad: str = "<|endoftext|>") -> CLIPTokenizer:
    """The CLIP tokenizer dreamcord ships for single files (49,408 tokens)."""
    folder = ORIGINAL_CONFIGS / "clip_tokenizer"
    tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=77, pad_token=pad)
    assert len(tokenizer) == 49408
    return tokenizer


def _text_encoder(
    width: int, *, projection: bool, act: str, layers: int = 3
) -> CLIPTextModel | CLIPTextModelWithProjection:
    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
        num_attention_heads=max(1, width // 64), max_position_embeddings=77, projection_dim=width,
        hidden_act=act, bos_token_id=0, eos_token_id=2, pad_token_id=1,
    )  # fmt: skip
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def _vae(scaling_factor: float = 0.18215) -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=4, norm_num_groups=32,
        scaling_factor=scaling_factor,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )  # fmt: skip


def conventional_tiny_sd1(seed: int = 0) -> StableDiffusionPipeline:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 64), layers_per_block=2, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
    )  # fmt: skip
    return StableDiffusionPipeline(
        vae=_vae(), text_encoder=_text_encoder(32, projection=False, act="quick_gelu"),
        tokenizer=clip_tokenizer(), unet=unet, scheduler=sd_noise_schedule(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip


def conventional_tiny_sd2(seed: int = 0) -> StableDiffusionPipeline:
    """SD 2.x's layout: OpenCLIP text encoder (gelu, `!` padding; 23 of the file's 24 layers, as
    diffusers keeps them), linear projections in the UNet's transformers, v-prediction."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 64), layers_per_block=2, attention_head_dim=(1, 1),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64, use_linear_projection=True, upcast_attention=True,
    )  # fmt: skip
    encoder = _text_encoder(64, projection=False, act="gelu", layers=23)
    scheduler = DDIMScheduler.from_config(sd_noise_schedule().config, prediction_type="v_prediction")
    return StableDiffusionPipeline(
        vae=_vae(), text_encoder=encoder, tokenizer=clip_tokenizer(pad="!"), unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip


def conventional_tiny_sdxl(seed: int = 0) -> StableDiffusionXLPipeline:
    """Widths differ between the two text encoders, as in real SDXL (768 and 1280): diffusers tells
    them apart by width."""
    torch.manual_seed(seed)
    time_features = 8
    unet = UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 64, 64), layers_per_block=2, attention_head_dim=(1, 1, 1),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2), use_linear_projection=True, cross_attention_dim=32 + 64,
        addition_embed_type="text_time", addition_time_embed_dim=time_features,
        projection_class_embeddings_input_dim=6 * time_features + 64,
    )  # fmt: skip
    return StableDiffusionXLPipeline(
        vae=_vae(scaling_factor=0.13025), text_encoder=_text_encoder(32, projection=False, act="quick_gelu"),
        text_encoder_2=_text_encoder(64, projection=True, act="gelu"),
        tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(pad="!"), unet=unet,
        scheduler=sd_noise_schedule(),
    )  # fmt: skip


def _shipped_config(family: str, part: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((ORIGINAL_CONFIGS / family / part / "config.json").read_text())
    return {key: value for key, value in config.items() if not key.startswith("_")}


def full_size_pipeline(family: str) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
    """SD 1.5 or SDXL base with random weights, in fp16 (what a checkpoint file holds), built from the
    configs dreamcord ships for single files: exactly their shapes."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)  # built in fp16: SDXL in fp32 would take 14 GiB on the way
    try:
        unet = UNet2DConditionModel.from_config(_shipped_config(family, "unet"))
        vae = AutoencoderKL.from_config(_shipped_config(family, "vae"))
        text = CLIPTextModel(CLIPTextConfig(**_shipped_config(family, "text_encoder")))
        pipeline: StableDiffusionPipeline | StableDiffusionXLPipeline
        if family == "sd1":
            pipeline = StableDiffusionPipeline(
                vae=vae, text_encoder=text, tokenizer=clip_tokenizer(), unet=unet, scheduler=sd_noise_schedule(),
                safety_checker=None, feature_extractor=None, requires_safety_checker=False,
            )  # fmt: skip
        else:
            text_2 = CLIPTextModelWithProjection(CLIPTextConfig(**_shipped_config(family, "text_encoder_2")))
            pipeline = StableDiffusionXLPipeline(
                vae=vae, text_encoder=text, text_encoder_2=text_2, tokenizer=clip_tokenizer(),
                tokenizer_2=clip_tokenizer(pad="!"), unet=unet, scheduler=sd_noise_schedule(),
            )  # fmt: skip
    finally:
        torch.set_default_dtype(default)
    return pipeline.to(torch.float16)


def save_full_size(family: str, path: str) -> None:
    """`full_size_pipeline(family)` saved as a diffusers folder, or as one file if `path` ends .safetensors."""
    pipeline = full_size_pipeline(family)
    if path.endswith(".safetensors"):
        save_single_file(pipeline, Path(path))
    else:
        pipeline.save_pretrained(path, safe_serialization=True)


def unet_to_original(unet: UNet2DConditionModel) -> Weights:
    """A diffusers UNet's weights under LDM's names (`input_blocks`, `middle_block`, `output_blocks`)."""
    renames = _unet_renames(unet.config)
    return {
        "model.diffusion_model." + original_unet_name(name, renames): t
        for name, t in unet.state_dict().items()
    }


def original_unet_name(name: str, renames: dict[str, str]) -> str:
    """One diffusers UNet parameter or module name under LDM's names (`renames`: `_unet_renames`)."""
    prefix = max((p for p in renames if name.startswith(p) or name + "." == p), key=len, default=None)
    assert prefix is not None, f"no LDM name for {name}"
    rest = name[len(prefix) :]
    if ".resnets." in prefix:
        rest = next(
            (new + rest[len(old) :] for old, new in _RESNET_PARTS.items() if rest.startswith(old)), rest
        )
    return renames[prefix] + rest


_RESNET_PARTS = {
    "norm1.": "in_layers.0.", "conv1.": "in_layers.2.", "norm2.": "out_layers.0.",
    "conv2.": "out_layers.3.", "time_emb_proj.": "emb_layers.1.", "conv_shortcut.": "skip_connection.",
}  # fmt: skip


def _unet_renames(config: Any) -> dict[str, str]:
    """diffusers prefix -> LDM prefix: per level `layers` res-blocks (each maybe with a transformer),
    then a downsampler; the output side has one more res-block per level, then the upsampler."""
    layers, levels = config.layers_per_block, len(config.block_out_channels)
    renames = {
        "time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
        "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
        "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
        "mid_block.attentions.0.": "middle_block.1.",
        "mid_block.resnets.0.": "middle_block.0.", "mid_block.resnets.1.": "middle_block.2.",
    }  # fmt: skip
    for level in range(levels):
        for j in range(layers):
            block = 1 + level * (layers + 1) + j
            renames[f"down_blocks.{level}.resnets.{j}."] = f"input_blocks.{block}.0."
            renames[f"down_blocks.{level}.attentions.{j}."] = f"input_blocks.{block}.1."
        renames[f"down_blocks.{level}.downsamplers.0.conv."] = (
            f"input_blocks.{(level + 1) * (layers + 1)}.0.op."
        )
        has_attention = config.up_block_types[level].startswith("CrossAttn")
        for j in range(layers + 1):
            block = level * (layers + 1) + j
            renames[f"up_blocks.{level}.resnets.{j}."] = f"output_blocks.{block}.0."
            renames[f"up_blocks.{level}.attentions.{j}."] = f"output_blocks.{block}.1."
        last = level * (layers + 1) + layers
        renames[f"up_blocks.{level}.upsamplers.0."] = f"output_blocks.{last}.{2 if has_attention else 1}."
    return renames


def kohya_sdxl_lora(diffusers_lora: Weights, unet: UNet2DConditionModel) -> Weights:
    """A diffusers-format SDXL LoRA as kohya's sd-scripts write one: UNet modules under LDM's block
    names (`lora_unet_input_blocks_4_1_…`), text encoders as `lora_te1_…`/`lora_te2_…`, with alphas."""
    renames = _unet_renames(unet.config)
    prefixes = {"unet.": "lora_unet_", "text_encoder.": "lora_te1_", "text_encoder_2.": "lora_te2_"}
    converted: Weights = {}
    for key, value in diffusers_lora.items():
        part = max((p for p in prefixes if key.startswith(p)), key=len)
        module, _, suffix = key.removeprefix(part).rpartition(".lora")
        direction = "down" if (suffix.startswith("_A.") or ".down." in suffix) else "up"
        if part == "unet.":
            module = original_unet_name(module + ".", renames).rstrip(".")
        elif not module.startswith("text_model."):
            module = "text_model." + module  # kohya names the CLIP modules with transformers' full path
        name = prefixes[part] + module.replace(".", "_")
        converted[f"{name}.lora_{direction}.weight"] = value
        rank = value.shape[0] if direction == "down" else value.shape[1]
        converted[f"{name}.alpha"] = torch.tensor(float(rank))
    return converted


def vae_to_original(vae: AutoencoderKL) -> Weights:
    """A diffusers VAE under LDM's names (`encoder.down.i.block.j`, decoder levels numbered upwards)."""
    levels = len(vae.config.block_out_channels)
    renames = {"mid_block.attentions.0.": "mid.attn_1.", "mid_block.resnets.0.": "mid.block_1.",
               "mid_block.resnets.1.": "mid.block_2.", "conv_norm_out.": "norm_out."}  # fmt: skip
    for level in range(levels):
        renames[f"encoder.down_blocks.{level}.resnets."] = f"encoder.down.{level}.block."
        renames[f"encoder.down_blocks.{level}.downsamplers.0."] = f"encoder.down.{level}.downsample."
        renames[f"decoder.up_blocks.{level}.resnets."] = f"decoder.up.{levels - 1 - level}.block."
        renames[f"decoder.up_blocks.{level}.upsamplers.0."] = f"decoder.up.{levels - 1 - level}.upsample."
    attention = {
        "group_norm.": "norm.",
        "to_q.": "q.",
        "to_k.": "k.",
        "to_v.": "v.",
        "to_out.0.": "proj_out.",
    }
    converted: Weights = {}
    for name, tensor in vae.state_dict().items():
        new = name.replace("conv_shortcut.", "nin_shortcut.")
        for old, replacement in renames.items():
            if old in new:
                new = new.replace(old, replacement)
        if ".attn_1." in new:
            head, _, tail = new.partition(".attn_1.")
            for old, replacement in attention.items():
                if tail.startswith(old):
                    tail = replacement + tail[len(old) :]
            new = f"{head}.attn_1.{tail}"
            if tensor.ndim == 2:  # LDM's attention projections are 1x1 convolutions
                tensor = tensor[:, :, None, None]
        converted["first_stage_model." + new] = tensor
    return converted


def clip_to_original(encoder: CLIPTextModel, prefix: str) -> Weights:
    """OpenAI CLIP keeps transformers' names under a prefix (with `text_model.`, as real files have)."""
    weights = encoder.state_dict()
    return {
        prefix + (name if name.startswith("text_model.") else "text_model." + name): tensor
        for name, tensor in weights.items()
        if not name.endswith("position_ids")
    }


def open_clip_to_original(
    encoder: CLIPTextModel | CLIPTextModelWithProjection, prefix: str, *, extra_layer: bool = False
) -> Weights:
    """OpenCLIP's names: fused q/k/v (`in_proj_weight`), `resblocks`, and a transposed projection.
    `extra_layer`: SD 2.x files hold one more layer than diffusers keeps (here a copy of the last)."""
    weights = {name.removeprefix("text_model."): tensor for name, tensor in encoder.state_dict().items()}
    converted: Weights = {
        prefix + "token_embedding.weight": weights.pop("embeddings.token_embedding.weight"),
        prefix + "positional_embedding": weights.pop("embeddings.position_embedding.weight"),
        prefix + "ln_final.weight": weights.pop("final_layer_norm.weight"),
        prefix + "ln_final.bias": weights.pop("final_layer_norm.bias"),
    }
    if "text_projection.weight" in weights:
        converted[prefix + "text_projection"] = weights.pop("text_projection.weight").T.contiguous()
    weights.pop("embeddings.position_ids", None)
    parts = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             "self_attn.out_proj": "attn.out_proj"}  # fmt: skip
    for layer in range(encoder.config.num_hidden_layers):
        old, new = f"encoder.layers.{layer}.", f"{prefix}transformer.resblocks.{layer}."
        for kind in ("weight", "bias"):
            converted[f"{new}attn.in_proj_{kind}"] = torch.cat(
                [weights.pop(f"{old}self_attn.{p}_proj.{kind}") for p in "qkv"]
            )
            for part, renamed in parts.items():
                converted[f"{new}{renamed}.{kind}"] = weights.pop(f"{old}{part}.{kind}")
    assert not weights, f"not converted: {sorted(weights)}"
    if extra_layer:
        last, extra = f"{prefix}transformer.resblocks.{encoder.config.num_hidden_layers - 1}.", None
        extra = f"{prefix}transformer.resblocks.{encoder.config.num_hidden_layers}."
        converted |= {extra + k[len(last) :]: t.clone() for k, t in converted.items() if k.startswith(last)}
    return converted


def save_single_file(pipeline: Any, path: Path, *, with_vae: bool = True) -> Path:
    """Write an SD 1.x or SDXL pipeline as one original-layout `.safetensors` file."""
    weights = unet_to_original(pipeline.unet)
    if with_vae:
        weights |= vae_to_original(pipeline.vae)
    if isinstance(pipeline, StableDiffusionXLPipeline):
        weights |= clip_to_original(pipeline.text_encoder, "conditioner.embedders.0.transformer.")
        weights |= open_clip_to_original(pipeline.text_encoder_2, "conditioner.embedders.1.model.")
    elif pipeline.text_encoder.config.hidden_act == "gelu":  # SD 2.x: OpenCLIP
        weights |= open_clip_to_original(pipeline.text_encoder, "cond_stage_model.model.", extra_layer=True)
    else:
        weights |= clip_to_original(pipeline.text_encoder, "cond_stage_model.transformer.")
    save_file({name: tensor.contiguous() for name, tensor in weights.items()}, path)
    return path
