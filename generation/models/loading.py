"""Loading base models (a hub id or a local folder) and deriving task pipelines that share their weights.

The checkpoint's family (SD 1.x/2.x, SDXL; generation.models.family_facts) is read before its
weights, and the pipeline comes from diffusers' AutoPipeline for it. One base model is kept in memory
per process; img2img / inpaint pipelines come from `from_pipe`, which reuses the same UNet, VAE and
text encoder objects, so four pipelines cost one model's memory.
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from diffusers import AutoPipelineForText2Image, DiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor2_0
from huggingface_hub import hf_hub_download
from PIL import Image
from safetensors.torch import load as load_safetensors

from generation.config import DEVICE_CHOICES, DEVICE_PATTERN, DTYPE_CHOICES, ModelConfig
from generation.errors import ModelLoadError, ModelNotFoundError, SpecError
from generation.models.adapter_files import AdapterFileError, inspect_adapter_file
from generation.models.checkpoint_facts import operation_refusal, resolution_of
from generation.models.edge_padding import pad_decoder_edges
from generation.models.families import Task, task_pipeline
from generation.models.family_facts import FAMILIES, FamilyFacts, family_named, family_of_pipeline_class
from generation.models.file_pipelines import load_file_pipeline
from generation.models.previews import PreviewDecoder, VaeDecoder, fit_latent_rgb, shipped_latent_rgb
from generation.models.single_file import is_single_file, read_single_file
from generation.models.sources import hub_offline, resolve_source
from generation.models.speedups import apply_speedups
from generation.models.vaes import load_preview_vae, load_vae

log = logging.getLogger(__name__)

_DTYPES = {"auto": None, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

PipelineT = TypeVar("PipelineT", bound=DiffusionPipeline)


@dataclass
class SafetyCheck:
    """The checkpoint's safety checker, run by us on finished pictures rather than inside the pipeline:
    the pipeline would black flagged pictures out, and an age-restricted channel may show them."""

    checker: Any  # diffusers' StableDiffusionSafetyChecker (or one the owner configured)
    features: Any  # its CLIP image processor

    @torch.no_grad()
    def flags(self, images: list[Image.Image]) -> list[bool]:
        parameter = next(self.checker.parameters())
        inputs = self.features([image.convert("RGB") for image in images], return_tensors="pt")
        clip_input = inputs.pixel_values.to(parameter.device, parameter.dtype)
        copies = [
            np.asarray(image.convert("RGB"), dtype=np.float32) / 255 for image in images
        ]  # it zeroes these
        _, flagged = self.checker(clip_input=clip_input, images=copies)
        return [bool(flag) for flag in flagged]


@dataclass
class LoadedModel:
    """A base pipeline in memory, with what jobs need to know about it."""

    config: ModelConfig
    pipeline: Any  # the family's text-to-image pipeline (diffusers' classes are untyped here)
    scheduler_config: dict[str, Any]  # the checkpoint's own; each job builds a fresh scheduler from it
    resolution: int
    family: FamilyFacts = field(default_factory=lambda: family_named("sd1"))
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where it runs (offload too)
    safety: SafetyCheck | None = None
    derived: dict[type[DiffusionPipeline], DiffusionPipeline] = field(default_factory=dict)
    tasks: dict[Task, DiffusionPipeline] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # per ControlNet, Fill, upscalers: loaded on use
    preview_vae: Any = None  # the AutoencoderTiny `preview` names, if it names one
    image_prompts: Any = None  # its IP-Adapter once a job used it (generation.models.image_prompts)
    _preview: PreviewDecoder | None = field(default=None, repr=False)

    def preview_decoder(self) -> PreviewDecoder:
        """How progress previews are decoded (generation.operations.preview); made at the first one."""
        if self._preview is None:
            pipeline, setting = self.pipeline, self.config.preview
            if setting == "vae" or self.preview_vae is not None:
                self._preview = VaeDecoder(self.preview_vae or pipeline.vae, pipeline.image_processor)
            else:
                self._preview = shipped_latent_rgb(self.config.source) or fit_latent_rgb(pipeline.vae)
        return self._preview

    def task(self, task: Task) -> Any:
        """The family's pipeline for `task` (img2img, inpaint), sharing this model's weight tensors."""
        if task == "text2img":
            return self.pipeline
        if task not in self.tasks:
            self.tasks[task] = task_pipeline(self.pipeline, task)
        return self.tasks[task]

    def require(self, operation: str) -> None:
        """Refuse, in one line, an operation this model cannot do (family_facts.OPERATION_WORDS)."""
        if refusal := operation_refusal(self.config, self.family, {operation}):
            raise SpecError(refusal)

    def derive(self, pipeline_type: type[PipelineT]) -> PipelineT:
        """A task pipeline (img2img, inpaint, …) sharing this model's weight tensors."""
        if pipeline_type is type(self.pipeline):
            return self.pipeline
        if pipeline_type not in self.derived:
            derived = pipeline_type.from_pipe(self.pipeline)
            derived.set_progress_bar_config(disable=True)  # from_pipe does not carry it over
            self.derived[pipeline_type] = derived
        derived_pipeline: PipelineT = self.derived[pipeline_type]
        return derived_pipeline

    def nsfw_flags(self, images: list[Image.Image]) -> list[bool]:
        """The safety checker's verdict per picture (all False when the model has none)."""
        return self.safety.flags(images) if self.safety else [False] * len(images)


def choose_device(preference: str = "auto") -> torch.device:
    """The device to run on: the one asked for, else CUDA, then Apple's MPS, then the CPU."""
    if not DEVICE_PATTERN.match(preference):
        raise ModelLoadError(
            f"device must be one of {', '.join(DEVICE_CHOICES)} (or cuda:N), got {preference!r}"
        )
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def choose_dtype(device: torch.device, preference: str = "auto") -> torch.dtype:
    """bf16 on CUDA cards that have it (fp16 otherwise), fp16 on MPS, fp32 on the CPU."""
    if preference not in DTYPE_CHOICES:
        raise ModelLoadError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {preference!r}")
    chosen = _DTYPES[preference]
    if chosen is not None:
        if device.type == "cpu" and chosen != torch.float32 and not cpu_computes_half_precision():
            log.warning(
                "%s on this CPU (%s, no AVX-512) runs convolutions hundreds of times slower than "
                "float32 (measured: 600x); set dtype = \"float32\" for CPU work on this machine",
                preference, torch.backends.cpu.get_cpu_capability(),
            )  # fmt: skip
        return chosen
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def cpu_computes_half_precision() -> bool:
    """Whether this CPU has kernels for bf16/fp16 convolutions: oneDNN has them for AVX-512 (and
    ARM's); on x86 CPUs with AVX2 alone the convolutions fall back to scalar code."""
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return not x86 or torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "AVX2")


def load_model(
    config: ModelConfig, *, device: str = "auto", dtype: str = "auto", offline: bool | None = None
) -> LoadedModel:
    """Load a checkpoint of a known family (a hub id, a diffusers folder or one file), ready to run."""
    offline = hub_offline() if offline is None else offline
    single_file = read_single_file(config.source) if is_single_file(config.source) else None
    where, local_only = (
        (str(single_file.path), True) if single_file else resolve_source(config.source, offline=offline)
    )
    torch_device = choose_device(device)
    torch_dtype = choose_dtype(torch_device, dtype if config.dtype == "auto" else config.dtype)
    try:
        if single_file:
            family = _checked_family(config, family_named(single_file.family), "its checkpoint file")
        else:
            family = _family(config, where, local_only)
        extra: dict[str, Any] = {}
        if family.name == "sd1" and not config.safety_checker:  # only SD 1.x checkpoints carry one
            extra = {"safety_checker": None, "requires_safety_checker": False}
        if config.fill and family.name != "flux":
            raise ModelLoadError(
                f"model {config.name!r}: fill = … is for Flux models, and this is {family.label}"
            )
        if config.vae:
            extra["vae"] = load_vae(config.vae, family, torch_dtype, offline)
        if single_file:
            pipeline = load_file_pipeline(config, single_file, family, torch_dtype, extra, offline=offline)
        else:
            pipeline = AutoPipelineForText2Image.from_pretrained(
                where, dtype=torch_dtype, local_files_only=local_only, **extra
            )
    except (OSError, ValueError) as error:
        if local_only and not Path(where).exists():
            raise ModelNotFoundError(
                f"model {config.name!r} ({where}) is not in the local cache and the hub is offline"
            ) from error
        raise ModelLoadError(f"could not load model {config.name!r} from {where}: {error}") from error
    check_pipeline(config, family, pipeline)
    _fuse_loras(config, pipeline)
    if hasattr(pipeline, "unet"):  # SD 1.x/SDXL: PyTorch's fused attention (Flux uses its own)
        pipeline.unet.set_attn_processor(AttnProcessor2_0())
    apply_speedups(config, pipeline)
    pipeline.set_progress_bar_config(disable=True)  # callers report progress through their own callbacks
    if config.vae_tiling:
        pipeline.vae.enable_tiling()
    if config.vae_edge_padding:
        pad_decoder_edges(pipeline.vae)
    preview_vae = load_preview_vae(config, torch_dtype, offline)
    _place(config, pipeline, torch_device)
    if preview_vae is not None:
        preview_vae.to(torch_device)
    safety = None
    if config.safety_checker:
        safety = SafetyCheck(pipeline.safety_checker, pipeline.feature_extractor)
        pipeline.safety_checker = None  # run by us after each job (SafetyCheck says why)
    log.info("loaded model %s from %s on %s (%s)", config.name, where, torch_device, torch_dtype)
    return LoadedModel(
        config=config,
        pipeline=pipeline,
        scheduler_config=dict(pipeline.scheduler.config)
        | ({"prediction_type": config.prediction} if config.prediction else {}),
        resolution=config.resolution
        or family.native_side
        or resolution_of(pipeline.unet.config, pipeline.vae.config),
        family=family,
        safety=safety,
        device=torch_device,
        preview_vae=preview_vae,
    )


def _place(config: ModelConfig, pipeline: Any, device: torch.device) -> None:
    """Move the weights to the device, or let diffusers' offload hooks move them there as they run."""
    if config.offload != "none" and device.type != "cuda":
        log.info(
            "model %s: offload = %r works on CUDA only; on %s it is off", config.name, config.offload, device
        )
    elif config.offload == "model":
        pipeline.enable_model_cpu_offload(device=device)
        return
    elif config.offload == "sequential":
        pipeline.enable_sequential_cpu_offload(device=device)
        return
    pipeline.to(device)


def _fuse_loras(config: ModelConfig, pipeline: Any) -> None:
    """Merge the configured LoRAs into the weights, then drop their layers: the model runs as fast as
    without them, and users' own LoRAs still load on top. Each file gets the same strict check as an
    uploaded one (safetensors only, header checked before a byte of it is loaded)."""
    for index, fused in enumerate(config.fuse_loras):
        path = Path(fused.path).expanduser()
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ModelLoadError(
                f"model {config.name!r}: fuse_loras file {path} cannot be read ({error})"
            ) from None
        try:
            info = inspect_adapter_file(data, path.name)
        except AdapterFileError as error:
            raise ModelLoadError(f"model {config.name!r}: fuse_loras {error}") from None
        if info.kind != "lora":
            raise ModelLoadError(f"model {config.name!r}: fuse_loras {path.name} is not a LoRA")
        name = f"fused-{index}"
        try:
            pipeline.load_lora_weights(load_safetensors(data), adapter_name=name)
            pipeline.fuse_lora(lora_scale=fused.weight, adapter_names=[name])
        except Exception as error:  # diffusers/peft: shapes that do not fit this model, and the like
            raise ModelLoadError(
                f"model {config.name!r}: fuse_loras {path.name} does not fit it: {error}"
            ) from None
        pipeline.unload_lora_weights()  # the merged weights stay; the LoRA layers go
        log.info("model %s: fused %s at weight %g", config.name, path.name, fused.weight)


def _family(config: ModelConfig, where: str, local_only: bool) -> FamilyFacts:
    """The family the config names, or the one the checkpoint's pipeline class marks (read before
    any weight: an SDXL folder loaded as SD 1.x would drop its second text encoder silently)."""
    if Path(where).is_dir():
        index_file = Path(where) / "model_index.json"
    else:  # raises an OSError when offline and not cached
        index_file = Path(hf_hub_download(where, "model_index.json", local_files_only=local_only))
    class_name = str(json.loads(index_file.read_text(encoding="utf-8")).get("_class_name"))
    found = family_of_pipeline_class(class_name)
    if found is None:
        if config.family:
            return family_named(config.family)
        known = ", ".join(f"{f.label} ({', '.join(f.pipeline_classes)})" for f in FAMILIES.values())
        raise ModelLoadError(f"model {config.name!r} is a {class_name} checkpoint; dreamcord runs {known}")
    return _checked_family(config, found, f"its checkpoint is a {class_name}")


def _checked_family(config: ModelConfig, found: FamilyFacts, evidence: str) -> FamilyFacts:
    """The family found, unless the config names another (a mistake worth one clear line)."""
    if config.family and family_named(config.family) != found:
        raise ModelLoadError(
            f"model {config.name!r} says family = {config.family!r}, but {evidence} ({found.label}); "
            "remove the key or fix it"
        )
    return found


def check_pipeline(config: ModelConfig, family: FamilyFacts, pipeline: Any) -> None:
    """Catch broken checkpoints at load time rather than as garbage images later."""
    pairs = [("tokenizer", "text_encoder")] + (
        [("tokenizer_2", "text_encoder_2")] if family.name in ("sdxl", "flux") else []
    )
    for tokenizer_name, encoder_name in pairs:
        tokenizer, encoder = getattr(pipeline, tokenizer_name, None), getattr(pipeline, encoder_name, None)
        if tokenizer is None or encoder is None:
            raise ModelLoadError(f"model {config.name!r}: its {tokenizer_name} or {encoder_name} is missing")
        vocab_size = encoder.config.vocab_size
        # transformers silently returns a 2-token dummy tokenizer when tokenizer files are missing offline.
        if (
            "T5" in type(encoder).__name__
        ):  # its table is padded past its tokenizer (32,128 rows, 32,100 tokens)
            fits = 2 < len(tokenizer) <= vocab_size
        else:
            fits = len(tokenizer) == vocab_size
        if not fits:
            raise ModelLoadError(
                f"model {config.name!r}: {tokenizer_name} has {len(tokenizer)} tokens but {encoder_name} "
                f"expects {vocab_size}; the tokenizer files are missing or do not belong to this model"
            )
    if config.safety_checker and getattr(pipeline, "safety_checker", None) is None:
        raise ModelLoadError(f"model {config.name!r}: safety_checker is on but the checkpoint has none")


class ModelCache:
    """Keeps at most one base model in memory per process, loading another on demand."""

    def __init__(
        self,
        configs: dict[str, ModelConfig],
        *,
        device: str = "auto",
        dtype: str = "auto",
        offline: bool | None = None,
    ) -> None:
        self.configs = configs
        self.device = device
        self.dtype = dtype
        self.offline = offline  # None: HF_HUB_OFFLINE decides
        self._current: LoadedModel | None = None

    @property
    def current_name(self) -> str | None:
        return self._current.config.name if self._current else None

    @property
    def current_device(self) -> torch.device | None:
        return self._current.device if self._current else None

    def get(self, name: str) -> LoadedModel:
        if name not in self.configs:
            known = ", ".join(sorted(self.configs)) or "none"
            raise ModelNotFoundError(f"unknown model {name!r}; configured models: {known}")
        if self._current is None or self._current.config.name != name:
            self._current = None  # drop the old model before loading the next: one in memory at a time
            self._current = load_model(
                self.configs[name], device=self.device, dtype=self.dtype, offline=self.offline
            )
        return self._current
