"""What made a picture, written into the picture, so that other tools read it back.

`parameters` is AUTOMATIC1111's infotext, exactly as A1111 writes it (prompt with `<lora:name:w>`,
"Negative prompt: …", then "Key: value, …" with Model hash, Lora hashes, TI hashes and Version), which
A1111's PNG Info, ComfyUI loaders, Civitai and sd-parsers read. PNGs carry it as a text chunk; JPEG and
WebP as EXIF UserComment (UTF-16, "UNICODE" prefix), as A1111 saves them. `dreamcord` holds the full
job spec as JSON with the picture's own seed, enough to render it again exactly.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from PIL import Image

from generation.specs import AdapterRef, JobSpec, PromptedSpec
from generation.version import dreamcord_version

A1111_SAMPLERS = {
    "euler_a": "Euler a",
    "euler": "Euler",
    "dpmpp_2m": "DPM++ 2M",
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "lcm": "LCM",
    "tcd": "TCD",
}
PARAMETERS = "parameters"
EXIF_IFD = 0x8769  # the Exif sub-IFD, where UserComment lives
USER_COMMENT = 0x9286
UNICODE_PREFIX = b"UNICODE\x00"  # EXIF's character code for UTF-16 (big-endian, as piexif and A1111 write)
ADAPTER_HASH_LENGTH = 12  # A1111's shorthash of a LoRA or an embedding
_TOKEN_RE = re.compile(r"<([^<>\s:]+)>")


@dataclass(frozen=True)
class ModelStamp:
    """What the infotext says about the model: its name, A1111's short hash of its checkpoint file
    (single files only: see generation.models.model_hash) and its clip skip."""

    name: str
    short_hash: str | None = None
    clip_skip: int | None = None


def a1111_prompt(text: str, adapters: tuple[AdapterRef, ...]) -> str:
    """The prompt as A1111 writes it: a LoRA as `<lora:name:weight>`, an embedding as its bare name."""
    kinds = {ref.name: ref for ref in adapters}

    def written(match: re.Match[str]) -> str:
        ref = kinds.get(match.group(1))
        if ref is None:
            return match.group(0)
        return ref.name if ref.kind == "embedding" else f"<lora:{ref.name}:{ref.weight:g}>"

    return _TOKEN_RE.sub(written, text)


def a1111_parameters(
    spec: PromptedSpec, seed: int | None, width: int, height: int, model: ModelStamp | None = None
) -> str:
    model = model or ModelStamp(spec.model)
    lines = [a1111_prompt(spec.prompt, spec.adapters)]
    if spec.negative_prompt:
        lines.append(f"Negative prompt: {a1111_prompt(spec.negative_prompt, spec.adapters)}")
    strength = getattr(spec, "strength", None)
    fields: dict[str, object] = {  # in A1111's order
        "Steps": spec.steps,
        "Sampler": A1111_SAMPLERS[spec.scheduler],
        "CFG scale": f"{spec.guidance:g}",
        "Seed": seed,
        "Size": f"{width}x{height}",
        "Model hash": model.short_hash,
        "Model": model.name,
        "Denoising strength": f"{strength:g}" if strength is not None else None,
        "Clip skip": model.clip_skip if model.clip_skip and model.clip_skip > 1 else None,
        "Lora hashes": _hashes(ref for ref in spec.adapters if ref.kind != "embedding"),
        "TI hashes": _hashes(ref for ref in spec.adapters if ref.kind == "embedding"),
        "Version": f"dreamcord {dreamcord_version()}",
    }
    text = ", ".join(f"{key}: {_quoted(value)}" for key, value in fields.items() if value is not None)
    return "\n".join([*lines, text])


def _hashes(refs: Iterable[AdapterRef]) -> str | None:
    named = [f"{ref.name}: {(ref.file or '')[:ADAPTER_HASH_LENGTH]}" for ref in refs]
    return ", ".join(named) or None


def _quoted(value: object) -> str:
    """A value as A1111 writes it: JSON-quoted when it holds a comma, a colon or a line break."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def provenance_chunks(
    spec: JobSpec | PromptedSpec, seed: int | None, width: int, height: int, model: ModelStamp | None = None
) -> dict[str, str]:
    if isinstance(spec, PromptedSpec) and seed is not None:
        spec = spec.model_copy(update={"seeds": (seed,)})  # this picture alone
    chunks = {"dreamcord": spec.to_json()}
    if isinstance(spec, PromptedSpec):
        chunks[PARAMETERS] = a1111_parameters(spec, seed, width, height, model)
    return chunks


def read_chunks(png: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(png)) as image:
        return {key: str(value) for key, value in image.text.items()}  # type: ignore[attr-defined]


def parameters_of(data: bytes) -> str | None:
    """The A1111 infotext of an encoded picture: its PNG chunk, or its EXIF UserComment."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "PNG":
            text = image.text.get(PARAMETERS)  # type: ignore[attr-defined]
            return str(text) if text is not None else None
        comment = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    if isinstance(comment, bytes) and comment.startswith(UNICODE_PREFIX):
        return comment[len(UNICODE_PREFIX) :].decode("utf-16-be", errors="replace")
    return None


def exif_with_parameters(parameters: str | None) -> Image.Exif:
    """EXIF holding `parameters` as A1111's UserComment (empty when there are none)."""
    exif = Image.Exif()
    if parameters:
        exif.get_ifd(EXIF_IFD)[USER_COMMENT] = UNICODE_PREFIX + parameters.encode("utf-16-be")
    return exif


def encode_with_parameters(
    image: Image.Image, image_format: str, parameters: str | None, **options: int
) -> bytes:
    """`image` as PNG, JPEG or WebP bytes that carry `parameters` in the place each format has for it."""
    from generation.outputs import encode_png

    if image_format.upper() == "PNG":
        return encode_png(image, {PARAMETERS: parameters} if parameters else None)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, exif=exif_with_parameters(parameters), **options)
    return buffer.getvalue()
