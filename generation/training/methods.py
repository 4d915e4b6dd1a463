"""The two ways to learn a personal token, behind one small interface the training loop drives.

- `LoraTraining`: DreamBooth with LoRA adapters (peft) on the UNet's attention projections; the token
  stands for "sks <class noun>" in prompts.
- `EmbeddingTraining`: textual inversion; new tokenizer tokens whose input embeddings are the only
  trained weights, initialised from the class noun (SDXL: in both text encoders).

Both work on copies of the parts they change, so the warm base model is never touched, and both
write files in the family's own diffusers format (SDXL: `text_encoder_2` LoRA layers; `clip_l` and
`clip_g` embeddings), so plain diffusers and A1111 load them.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from diffusers import UNet2DConditionModel
from diffusers.training_utils import cast_training_params
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save
from transformers import CLIPTokenizer

from generation.errors import SpecError
from generation.models.adapters import SDXL_EMBEDDING_KEYS
from generation.models.loading import LoadedModel
from generation.specs import TrainSpec
from generation.training.conditioning import Conditioning, TextEncoders, encode_for_training, text_encoders

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

    def instance_embeddings(self, count: int, generator: torch.Generator) -> Conditioning: ...

    def class_embeddings(self, count: int) -> Conditioning: ...

    def export(self) -> dict[str, torch.Tensor]: ...

    def sample_prompt(self) -> str: ...

    def sampling_pipeline(self, base: Any) -> Any: ...


def _components(encoders: TextEncoders) -> dict[str, Any]:
    """from_pipe's keyword arguments for these encoders (`tokenizer`, `text_encoder`, `…_2`)."""
    components: dict[str, Any] = {}
    for index, (tokenizer, text_encoder) in enumerate(encoders):
        suffix = "" if index == 0 else f"_{index + 1}"
        components[f"tokenizer{suffix}"] = tokenizer
        components[f"text_encoder{suffix}"] = text_encoder
    return components


class LoraTraining:
    """DreamBooth-LoRA: low-rank adapters on a copy of the UNet and, optionally, of the text encoders."""

    def __init__(self, model: LoadedModel, spec: TrainSpec) -> None:
        base = model.pipeline
        self.spec = spec
        self.pipeline_class = type(base)
        self.unet = _with_lora(base.unet, spec.rank, LORA_TARGET_MODULES)
        self.encoders: TextEncoders = [
            (tokenizer, _with_lora(encoder, spec.rank, TEXT_ENCODER_TARGET_MODULES))
            if spec.train_text_encoder
            else (tokenizer, encoder)
            for tokenizer, encoder in text_encoders(base)
        ]
        trained = [self.unet] + ([encoder for _, encoder in self.encoders] if spec.train_text_encoder else [])
        self._parameters = [p for module in trained for p in module.parameters() if p.requires_grad]
        with torch.no_grad():  # with frozen text encoders the two prompts are encoded once
            self._instance = self._encode(f"a {spec.trigger}")
            self._class = self._encode(f"a {spec.class_noun}")

    def _encode(self, prompt: str, count: int = 1) -> Conditioning:
        return encode_for_training(self.encoders, [prompt] * count)

    @property
    def parameters(self) -> list[torch.nn.Parameter]:
        return self._parameters

    def instance_embeddings(self, count: int, generator: torch.Generator) -> Conditioning:
        if self.spec.train_text_encoder:
            return self._encode(f"a {self.spec.trigger}", count)
        return self._instance.expand(count)

    def class_embeddings(self, count: int) -> Conditioning:
        if self.spec.train_text_encoder:
            return self._encode(f"a {self.spec.class_noun}", count)
        return self._class.expand(count)

    def export(self) -> dict[str, torch.Tensor]:
        """The LoRA in diffusers' format ("unet.…", "text_encoder.…", "text_encoder_2.…" keys), as the
        family's save_lora_weights writes it."""
        layers = {"unet_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(self.unet))}
        if self.spec.train_text_encoder:
            for name, encoder in _components(self.encoders).items():
                if name.startswith("text_encoder"):
                    layers[f"{name}_lora_layers"] = convert_state_dict_to_diffusers(
                        get_peft_model_state_dict(encoder)
                    )
        with tempfile.TemporaryDirectory() as directory:
            self.pipeline_class.save_lora_weights(directory, **layers, safe_serialization=True)
            return load_file(Path(directory) / "pytorch_lora_weights.safetensors")

    def sample_prompt(self) -> str:
        return f"a {self.spec.trigger}"

    def sampling_pipeline(self, base: Any) -> Any:
        return self.pipeline_class.from_pipe(base, unet=self.unet, **_components(self.encoders))


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
    """Textual inversion: `vectors` new tokens for `<token>`, initialised from the class noun, in
    every text encoder the model has."""

    def __init__(self, model: LoadedModel, spec: TrainSpec) -> None:
        base = model.pipeline
        self.spec = spec
        self.pipeline_class = type(base)
        self.unet = base.unet  # frozen and shared: gradients only flow through it
        self.unet.requires_grad_(False)
        self.tokens = [self.token] + [f"{self.token}_{index}" for index in range(1, spec.vectors)]
        self.encoders: TextEncoders = []
        self._embeddings: list[_TokenEmbeddingWithNewRows] = []
        for base_tokenizer, base_encoder in text_encoders(base):
            tokenizer, encoder = copy.deepcopy(base_tokenizer), copy.deepcopy(base_encoder)
            encoder.requires_grad_(False)
            if tokenizer.add_tokens(self.tokens) != len(self.tokens):
                raise SpecError(
                    f"{self.token} clashes with a token the model already has; choose another name"
                )
            table = encoder.get_input_embeddings()
            rows = _initial_rows(tokenizer, table, spec.class_noun, spec.vectors)
            embedding = _TokenEmbeddingWithNewRows(table, tokenizer.convert_tokens_to_ids(self.tokens), rows)
            encoder.set_input_embeddings(embedding)
            self.encoders.append((tokenizer, encoder))
            self._embeddings.append(embedding)

    @property
    def token(self) -> str:
        return f"<{self.spec.token}>"

    @property
    def parameters(self) -> list[torch.nn.Parameter]:
        return [embedding.rows for embedding in self._embeddings]

    def instance_embeddings(self, count: int, generator: torch.Generator) -> Conditioning:
        picks = torch.randint(len(EMBEDDING_TEMPLATES), (count,), generator=generator).tolist()
        prompts = [EMBEDDING_TEMPLATES[pick].format(" ".join(self.tokens)) for pick in picks]
        return encode_for_training(self.encoders, prompts)

    def class_embeddings(self, count: int) -> Conditioning:
        raise AssertionError("textual inversion trains without class images")

    def export(self) -> dict[str, torch.Tensor]:
        """diffusers' textual-inversion format: the token holding a (vectors, width) tensor; for two
        encoders (SDXL) `clip_l` and `clip_g`, as A1111 and diffusers' SDXL examples write them."""
        rows = [embedding.rows.detach().float().cpu().contiguous() for embedding in self._embeddings]
        if len(rows) == 1:
            return {self.token: rows[0]}
        return dict(zip(SDXL_EMBEDDING_KEYS, rows, strict=True))

    def sample_prompt(self) -> str:
        return f"a {self.token}"  # the pipeline expands a multi-vector token itself

    def sampling_pipeline(self, base: Any) -> Any:
        return self.pipeline_class.from_pipe(base, **_components(self.encoders))


def _with_lora(module: ModuleT, rank: int, targets: list[str]) -> ModuleT:
    """A frozen copy of `module` with trainable LoRA layers (in fp32, even on a half-precision model)."""
    copied = copy.deepcopy(module)
    copied.requires_grad_(False)
    # peft itself rather than the models' add_adapter: transformers 5.24's wants peft >= 0.22, which
    # is not released; the layers and the state dict they give are the same.
    inject_adapter_in_model(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=targets), copied
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
