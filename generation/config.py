"""Model configuration: plain data, importable without torch (the bot and the pool read it too)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from generation.specs import UPSCALE_STRENGTHS, SchedulerName, UpscaleSetup

HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16")
DtypeName = Literal["auto", "float32", "float16", "bfloat16"]
# How a model's weights wait for the GPU (CUDA only): all on it, one component at a time, one layer at a time.
OffloadMode = Literal["none", "model", "sequential"]
# Files that are checkpoints (the pickles among them are refused when read; see models/single_file).
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


ADAPTERS_KEPT_PER_WORKER = 8  # LoRAs (and, apart, embeddings) each worker keeps loaded, least recent out


@dataclass(frozen=True)
class RayOptions:
    """Where and how the Ray backend runs its workers (one actor per configured device)."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")  # settings: unknown keys fail

    address: str | None = None  # "auto", "ray://head:10001", …; None starts a Ray instance here
    namespace: str = "dreamcord"
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0  # for cuda workers (Ray picks the GPU and sets CUDA_VISIBLE_DEVICES)
    local_cpus: int | None = None  # the CPUs of a Ray instance started here (None: all of them)
    work_dir: str | None = None  # node-local scratch (training checkpoints); None: the temp dir


@dataclass(frozen=True)
class FusedLora:
    """A LoRA merged into a model's weights when it loads (e.g. LCM, Lightning or Hyper-SD for few-step
    models): a `.safetensors` file the owner put on the server, at `weight`."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")  # settings: unknown keys fail

    path: str
    weight: float = 1.0


@dataclass(frozen=True)
class IpAdapterConfig:
    """The model's IP-Adapter, for image prompts (/imagine's pictures, /blend, --iw, --sref): a
    `.safetensors` adapter file as h94/IP-Adapter ships them and the CLIP image encoder it was trained
    with, loaded through diffusers' `load_ip_adapter`."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")  # settings: unknown keys fail

    source: str  # a hub id ("h94/IP-Adapter") or a folder
    weight_name: str  # the adapter file in it, e.g. "ip-adapter_sd15.safetensors" (safetensors only)
    subfolder: str = ""  # where the file is inside `source`, e.g. "models" or "sdxl_models"
    # The image encoder's folder: a name is inside `subfolder`, a path with "/" is from `source`'s
    # top ("models/image_encoder", which h94's SDXL ViT-H adapters use): diffusers' own rule.
    image_encoder: str = "image_encoder"
    scale: float = 0.6  # the adapter scale at --iw 1 (--iw 0-3 multiplies it)
    # --sref: per-layer scales (InstantStyle) at --iw 1, in set_ip_adapter_scale's form, e.g.
    # {up = {block_0 = [0.0, 1.0, 0.0]}} for SDXL; None: the family's own (generation.models.image_prompts).
    style_scales: dict[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class TurboConfig:
    """What `--turbo` does on a model (generation.models.turbo): fewer steps with a few-step sampler,
    and, where the owner has one, a few-step LoRA (LCM, Lightning, Hyper-SD, TCD: a `.safetensors`
    on the server, applied for the job only) or first-block caching (transformer models: Flux)."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")  # settings: unknown keys fail

    steps: int = 8
    scheduler: SchedulerName | None = None  # None: the model's own
    guidance: float | None = None  # None: the model's own (few-step LoRAs want 1-2)
    lora: str | None = None
    lora_weight: float = 1.0
    first_block_cache: float | None = (
        None  # threshold (e.g. 0.08): skip blocks while the first barely changes
    )


@dataclass(frozen=True)
class ModelConfig:
    """One configured model: where its weights are and the defaults its jobs start from."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")  # settings: unknown keys fail

    name: str
    source: str  # a hub id ("owner/name"), a local folder in diffusers layout, or one .safetensors file
    # For a Flux transformer file as `source` (BFL's or ComfyUI's layout: the transformer alone): the Flux
    # hub id or diffusers folder it was made from, which supplies the text encoders, tokenizers and VAE.
    base: str | None = None
    scheduler: SchedulerName = "euler_a"
    steps: int = 25
    guidance: float = 7.0
    resolution: int | None = None  # native image side in pixels; read from the checkpoint when None
    safety_checker: bool = False
    description: str = ""
    # Per training method ("lora", "embedding"): overrides of generation.training.defaults.GENERIC.
    training: dict[str, dict[str, float]] = field(default_factory=dict, hash=False)
    # ControlNets for this base model, by control mode ("canny", "depth", "pose"): hub id or folder.
    controlnets: dict[str, str] = field(default_factory=dict, hash=False)
    # Upscale's super-resolution: one .safetensors file of an ESRGAN-family network (Real-ESRGAN, 4x-UltraSharp;
    # generation.models.sr_networks), the first stage of every upscale before its img2img detail passes;
    # or a diffusers x4 pipeline (e.g. stabilityai/stable-diffusion-x4-upscaler) that subtle upscales
    # use instead of img2img detail passes.
    upscaler: str | None = None
    # The img2img strength of the detail passes after the first stage, per upscale mode, where they
    # differ from the defaults (subtle 0.2, creative 0.4); 0: none (the enlarged picture as it is).
    upscale_strengths: dict[Literal["subtle", "creative"], Annotated[float, Field(ge=0, le=1)]] = field(
        default_factory=dict, hash=False
    )
    # The model family ("sd1", "sdxl", "flux"; generation.models.family_facts); None: read from the checkpoint.
    family: str | None = None
    # Another VAE for this model (a hub id, a diffusers folder or one file), e.g. a fixed fp16 SDXL VAE.
    vae: str | None = None
    # Text-encoder layers counted from the end, as A1111 says it (2: the penultimate; 1 or None: the last).
    clip_skip: int | None = None
    # LoRAs merged into the weights at load (pair a few-step LoRA with scheduler = "lcm" or "tcd", few steps).
    fuse_loras: tuple[FusedLora, ...] = ()
    # What the model predicts, if not what its scheduler config says: "v_prediction" for v-prediction
    # fine-tunes, "epsilon" for an SD 2.x 512-px base model read from a single file (taken as 2.1, v).
    prediction: Literal["epsilon", "v_prediction"] | None = None
    # A Flux Fill model (hub id or folder, e.g. black-forest-labs/FLUX.1-Fill-dev, or BFL's transformer file)
    # for Vary (Region), zoom and pans of a Flux model: only its transformer is loaded; VAE and text
    # encoders are shared.
    fill: str | None = None
    # A folder of LoRAs/embeddings on this server for this model: each .safetensors in it is `<file name>`
    # for everyone (mirrored into the library when the bot starts; bot/server_loras.py).
    lora_folder: str | None = None
    # Memory savers for 8-12 GB cards (no effect on the CPU): "model" moves one component at a time to
    # the GPU (about half the memory, a little slower), "sequential" one layer at a time (least, much slower).
    offload: OffloadMode = "none"
    # Decode large pictures (upscales) in overlapping tiles: far less memory for the same picture.
    vae_tiling: bool = False
    # Decode with one replicated latent cell around the latents, cut off after, for a VAE whose decoder
    # was fine-tuned so (generation.models.edge_padding): its frame then carries no marks.
    vae_edge_padding: bool = False
    # Pictures one pipeline call may render when queued /imagine jobs of several users share it
    # (generation.pool.batching); 0 or 4 (one grid): no batching. On a GPU, size it to its memory
    # (a batch that runs out of memory falls back to one job at a time).
    batch_images: int = 8
    # `--turbo` on this model; None: the flag is refused for it.
    turbo: TurboConfig | None = None
    # Fast paths (generation.models.speedups), off by default: NHWC convolutions, fused attention
    # projections (no LoRAs then), and torch.compile of the denoiser (warmed up at worker start).
    channels_last: bool = False
    fuse_qkv: bool = False
    compile: bool = False
    # Progress previews: "approximate" (a linear latent-to-RGB map fitted to the VAE), "vae" (the
    # full decoder), or a folder/hub id of an AutoencoderTiny (TAESD and kin). Final pictures: the VAE.
    preview: str = "approximate"
    # This model's precision; "auto": the worker's choice (bf16 or fp16 on GPUs, fp32 on the CPU).
    dtype: DtypeName = "auto"
    # /describe for this model: a captioning model loaded with transformers (a folder or hub id, e.g.
    # Salesforce/blip-image-captioning-large or microsoft/Florence-2-base), or "bundled" (the bundled
    # model's own describer); None: /describe is refused for this model.
    describer: str | None = None
    # Image prompts (/blend, pictures on /imagine, --iw, --sref): this model's IP-Adapter; None: refused.
    ip_adapter: IpAdapterConfig | None = None

    def __post_init__(self) -> None:
        if self.base is not None and not self.source.lower().endswith(SINGLE_FILE_SUFFIXES):
            raise ValueError("base = … is for a Flux transformer file (source = one .safetensors)")


def upscale_setup(config: ModelConfig) -> UpscaleSetup:
    """What `config` says about upscaling: one `upscaler` file is a super-resolution network, anything
    else (a hub id or a folder) a diffusers x4 upscale pipeline; and the modes' detail strengths."""
    kind: Literal["x4", "network"] | None = None
    if config.upscaler is not None:
        kind = "network" if config.upscaler.lower().endswith(SINGLE_FILE_SUFFIXES) else "x4"
    return UpscaleSetup(kind, UPSCALE_STRENGTHS | config.upscale_strengths)
