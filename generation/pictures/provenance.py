"""What made a picture, written into the picture: PNG text chunks any tool can read.

`parameters` is the AUTOMATIC1111 format (prompt, "Negative prompt: …", then "Key: value, …"), which
A1111, ComfyUI loaders, Civitai and most image viewers parse; `dreamcord` holds the full job spec as
JSON with the picture's own seed, enough to render it again exactly.
"""

from __future__ import annotations

import io
import json

from PIL import Image

from generation.specs import JobSpec, PromptedSpec

A1111_SAMPLERS = {
    "euler_a": "Euler a",
    "euler": "Euler",
    "dpmpp_2m": "DPM++ 2M",
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "lcm": "LCM",
    "tcd": "TCD",
}


def a1111_parameters(spec: PromptedSpec, seed: int | None, width: int, height: int) -> str:
    lines = [spec.prompt]
    if spec.negative_prompt:
        lines.append(f"Negative prompt: {spec.negative_prompt}")
    fields = {
        "Steps": spec.steps,
        "Sampler": A1111_SAMPLERS[spec.scheduler],
        "CFG scale": f"{spec.guidance:g}",
        "Seed": seed,
        "Size": f"{width}x{height}",
        "Model": spec.model,
    }
    if spec.adapters:
        fields["Lora hashes"] = ", ".join(f"{ref.name}: {(ref.file or '')[:12]}" for ref in spec.adapters)
    strength = getattr(spec, "strength", None)
    if strength is not None:
        fields["Denoising strength"] = f"{strength:g}"
    text = ", ".join(f"{key}: {_quoted(value)}" for key, value in fields.items() if value is not None)
    return "\n".join([*lines, text])


def _quoted(value: object) -> str:
    text = str(value)
    return json.dumps(text) if "," in text or (":" in text and not text[0].isdigit()) else text


def provenance_chunks(
    spec: JobSpec | PromptedSpec, seed: int | None, width: int, height: int
) -> dict[str, str]:
    if isinstance(spec, PromptedSpec) and seed is not None:
        spec = spec.model_copy(update={"seeds": (seed,)})  # this picture alone
    chunks = {"dreamcord": spec.to_json()}
    if isinstance(spec, PromptedSpec):
        chunks["parameters"] = a1111_parameters(spec, seed, width, height)
    return chunks


def read_chunks(png: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(png)) as image:
        return {key: str(value) for key, value in image.text.items()}  # type: ignore[attr-defined]
