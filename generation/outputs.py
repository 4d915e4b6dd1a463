"""What a job produces, in a form that crosses process boundaries (no torch needed to read it)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image, PngImagePlugin


@dataclass(frozen=True)
class ImageOutput:
    """One finished image, PNG-encoded so it crosses process boundaries and lands in the file store as is."""

    png: bytes
    seed: int | None
    width: int
    height: int

    def image(self) -> Image.Image:
        with Image.open(io.BytesIO(self.png)) as image:
            return image.convert("RGB")


@dataclass(frozen=True)
class AdapterOutput:
    """A trained personal token: a safetensors file diffusers loads as a LoRA or an embedding."""

    kind: str  # "lora" | "embedding"
    safetensors: bytes
    trigger: str  # LoRA: the words `<token>` stands for in prompts
    final_loss: float


@dataclass(frozen=True)
class PromptTokens:
    """A prompt's length in its main text encoder's tokens (stored with the job, shown in /info)."""

    count: int  # without start and end markers
    window: int  # tokens one encoder pass reads
    chunks: bool = True  # more than a window is encoded in chunks (CLIP); False: cut there (Flux's T5)

    @property
    def chunked(self) -> bool:
        return self.chunks and self.count > self.window

    def describe(self) -> str:
        if self.count <= self.window:
            return f"{self.count} tokens (of {self.window} per window)"
        if self.chunks:
            return f"{self.count} tokens, encoded in {-(-self.count // self.window)} windows of {self.window}"
        return f"{self.count} tokens; the text encoder reads the first {self.window}"


@dataclass(frozen=True)
class JobOutput:
    images: tuple[ImageOutput, ...]
    elapsed_s: float
    nsfw: tuple[bool, ...] = field(default=())
    batch_retried: bool = False  # True when an out-of-memory error forced smaller batches
    adapter: AdapterOutput | None = None  # training jobs only
    tokens: PromptTokens | None = None  # prompted jobs: the prompt's token count
    timings: tuple[tuple[str, float], ...] = ()  # seconds per phase on the worker (generation.timings)
    texts: tuple[str, ...] = ()  # what a text-only job produced: /describe's suggestions


def encode_png(image: Image.Image, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes, with `text` as iTXt chunks (UTF-8: prompts may be in any language)."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()
