"""The two ways to learn a personal token, behind one small interface the training loop drives.

- `LoraTraining`: DreamBooth with LoRA adapters (peft) on the UNet's attention projections; the token
  stands for "sks <class noun>" in prompts.
- `EmbeddingTraining`: textual inversion; new tokenizer tokens whose input embeddings are the only
  trained weights, initialised from the class noun.

Both work on copies of the parts they change, so the warm base model is never touched.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from diffusers.training_utils import cast_training_params
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save
from transformers import CLIPTextModel, CLIPTokenizer

from generation.errors import SpecError
from generation.models.loading import LoadedModel
from generation.specs import TrainSpec

LORA_TARGET_MODULES = [
    "to_k",
    "to_q",
    "to_v",
    "to_out.0",
]  # the attention projections, as in diffusers' script
TEXT_ENCODER_TARGET_MODULES = [
    "q_proj",
    "k_proj",
    "v_proj",
    "out_proj",
]  # CLIP attention, as in diffusers' script
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)
EMBEDDING_TEMPLATES = ("a {}", "a photo of a {}", "a picture of a {}", "{}")


class TrainingMethod(Protocol):
    unet: UNet2DConditionModel

    @property
    def parameters(self) -> list[torch.nn.Parameter]: ...

    def instance_embeddings(self, count: int, generator: torch.Generator) -> torch.Tensor: ...

    def class_embeddings(self, count: int) -> torch.Tensor: ...

    def export(self) -> dict[str, torch.Tensor]: ...

    def sample_prompt(self) -> str: ...

    def sampling_pipeline(self, base: StableDiffusionPipeline) -> StableDiffusionPipeline: ...


def encode_text(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, prompts: list[str]) -> torch.Tensor:
    """Prompt embeddings exactly as StableDiffusionPipeline.encode_prompt makes them (no clip skip)."""
    ids = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(text_encoder.device)
    hidden: torch.Tensor = text_encoder(ids)[0]
    return hidden


class LoraTraining:
    """DreamBooth-LoRA: low-rank adapters on a copy of the UNet and, optionally, of the text encoder."""

    def __init__(self, model: LoadedModel, spec: TrainSpec) -> None:
        base = model.pipeline
        self.spec = spec
        self.tokenizer = base.tokenizer
        self.unet = _with_lora(base.unet, spec.rank, LORA_TARGET_MODULES)
        self.text_encoder = (
            _with_lora(base.text_encoder, spec.rank, TEXT_ENCODER_TARGET_MODULES)
            if spec.train_text_encoder
            else base.text_encoder
        )
        trained = [self.unet, self.text_encoder] if spec.train_text_encoder else [self.unet]
        self._parameters = [p for module in trained for p in module.parameters() if p.requires_grad]
        with torch.no_grad():  # with a frozen text encoder the two prompts are encoded once
            self._instance = self._encode(f"a {spec.trigger}")
            self._class = self._encode(f"a {spec.class_noun}")

    def _encode(self, prompt: str, count: int = 1) -> torch.Tensor:
        return encode_text(self.tokenizer, self.text_encoder, [prompt] * count)

    @property
    def parameters(self) -> list[torch.nn.Parameter]:
        return self._parameters

    def instance_embeddings(self, count: int, generator: torch.Generator) -> torch.Tensor:
        if self.spec.train_text_encoder:
            return self._encode(f"a {self.spec.trigger}", count)
        return self._instance.expand(count, -1, -1)

    def class_embeddings(self, count: int) -> torch.Tensor:
        if self.spec.train_text_encoder:
            return self._encode(f"a {self.spec.class_noun}", count)
        return self._class.expand(count, -1, -1)

    def export(self) -> dict[str, torch.Tensor]:
        """The LoRA in diffusers' format ("unet.…" and "text_encoder.…" keys), as save_lora_weights writes."""
        unet_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(self.unet))
        text_layers = (
            convert_state_dict_to_diffusers(get_peft_model_state_dict(self.text_encoder))
            if self.spec.train_text_encoder
            else None
        )
        with tempfile.TemporaryDirectory() as directory:
            StableDiffusionPipeline.save_lora_weights(
                directory,
                unet_lora_layers=unet_layers,
                text_encoder_lora_layers=text_layers,
                safe_serialization=True,
            )
            return load_file(Path(directory) / "pytorch_lora_weights.safetensors")

    def sample_prompt(self) -> str:
        return f"a {self.spec.trigger}"

    def sampling_pipeline(self, base: StableDiffusionPipeline) -> StableDiffusionPipeline:
        return StableDiffusionPipeline.from_pipe(base, unet=self.unet, text_encoder=self.text_encoder)


class _TokenEmbeddingWithNewRows(torch.nn.Module):
    """The text encoder's token embedding, with the rows of the new tokens taken from `rows`.

    The base table stays frozen and unresized; only `rows` (vectors x dim) is trained.
    """

    new_ids: torch.Tensor  # a buffer (moves with the module), declared for the type checker

    def __init__(self, base: torch.nn.Embedding, new_ids: list[int], rows: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("new_ids", torch.tensor(new_ids), persistent=False)
        self.rows = torch.nn.Parameter(rows)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        is_new = input_ids[..., None] == self.new_ids  # (..., vectors)
        embedded = self.base(torch.where(is_new.any(-1), 0, input_ids))
        new = (is_new.to(self.rows.dtype) @ self.rows).to(embedded.dtype)
        return torch.where(is_new.any(-1, keepdim=True), new, embedded)


class EmbeddingTraining:
    """Textual inversion: `vectors` new tokens for `<token>`, initialised from the class noun."""

    def __init__(self, model: LoadedModel, spec: TrainSpec) -> None:
        base = model.pipeline
        self.spec = spec
        self.unet = base.unet  # frozen and shared: gradients only flow through it
        self.unet.requires_grad_(False)
        self.tokenizer = copy.deepcopy(base.tokenizer)
        self.text_encoder = copy.deepcopy(base.text_encoder)
        self.text_encoder.requires_grad_(False)
        self.tokens = [self.token] + [f"{self.token}_{index}" for index in range(1, spec.vectors)]
        if self.tokenizer.add_tokens(self.tokens) != len(self.tokens):
            raise SpecError(f"{self.token} clashes with a token the model already has; choose another name")
        table = self.text_encoder.get_input_embeddings()
        rows = _initial_rows(self.tokenizer, table, spec.class_noun, spec.vectors)
        new_ids = self.tokenizer.convert_tokens_to_ids(self.tokens)
        self._embedding = _TokenEmbeddingWithNewRows(table, new_ids, rows)
        self.text_encoder.set_input_embeddings(self._embedding)

    @property
    def token(self) -> str:
        return f"<{self.spec.token}>"

    @property
    def parameters(self) -> list[torch.nn.Parameter]:
        return [self._embedding.rows]

    def instance_embeddings(self, count: int, generator: torch.Generator) -> torch.Tensor:
        picks = torch.randint(len(EMBEDDING_TEMPLATES), (count,), generator=generator).tolist()
        prompts = [EMBEDDING_TEMPLATES[pick].format(" ".join(self.tokens)) for pick in picks]
        return encode_text(self.tokenizer, self.text_encoder, prompts)

    def class_embeddings(self, count: int) -> torch.Tensor:
        raise AssertionError("textual inversion trains without class images")

    def export(self) -> dict[str, torch.Tensor]:
        """diffusers' textual-inversion format: one key, the token, holding a (vectors, dim) tensor."""
        return {self.token: self._embedding.rows.detach().float().cpu().contiguous()}

    def sample_prompt(self) -> str:
        return f"a {self.token}"  # the pipeline expands a multi-vector token itself

    def sampling_pipeline(self, base: StableDiffusionPipeline) -> StableDiffusionPipeline:
        return StableDiffusionPipeline.from_pipe(
            base, tokenizer=self.tokenizer, text_encoder=self.text_encoder
        )


def _with_lora(module: ModuleT, rank: int, targets: list[str]) -> ModuleT:
    """A frozen copy of `module` with trainable LoRA layers (in fp32, even on a half-precision model)."""
    copied = copy.deepcopy(module)
    copied.requires_grad_(False)
    # add_adapter comes from diffusers' PeftAdapterMixin, which torch's Module type does not know of.
    cast(Any, copied).add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=targets)
    )
    cast_training_params(copied, dtype=torch.float32)
    return copied


def _initial_rows(
    tokenizer: CLIPTokenizer, table: torch.nn.Module, class_noun: str, vectors: int
) -> torch.Tensor:
    ids = tokenizer(class_noun, add_special_tokens=False).input_ids
    weight = table.weight
    assert isinstance(weight, torch.Tensor)
    start = weight[ids].detach().float().mean(0)
    return start.repeat(vectors, 1).clone()


def make_method(model: LoadedModel, spec: TrainSpec) -> TrainingMethod:
    if spec.method == "lora":
        return LoraTraining(model, spec)
    return EmbeddingTraining(model, spec)


def serialise(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    return save({name: tensor.contiguous() for name, tensor in tensors.items()}, metadata=metadata)
