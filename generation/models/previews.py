"""How progress previews turn latents into a picture, per model (its `preview` setting):
- "approximate" (the default): a linear map from the latent channels to RGB, fitted to the model's
  own VAE by least squares (`fit_latent_rgb`, at the first preview; a model folder may ship it as
  `latent_rgb.json`, as the bundled model does). Microseconds, where a full VAE decode of an SDXL
  picture costs a large share of a step (bench/bench_previews.py);
- "vae": the model's own VAE, the exact picture at full cost;
- a folder or hub id of an `AutoencoderTiny` (TAESD, TAESDXL, TAEF1): a tiny decoder, close to the
  VAE's picture at a small share of its cost.
Final pictures always come from the full VAE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

LATENT_RGB_FILE = "latent_rgb.json"
_FIT_CELLS = 8  # colour blocks per side of each fitting picture
_FIT_PICTURES = 8


class PreviewDecoder(Protocol):
    def __call__(self, latents: torch.Tensor) -> Image.Image:
        """One picture from one unpacked latent (1, C, h, w) in the space the pipeline denoises in."""
        ...


@dataclass(frozen=True)
class VaeDecoder:
    """The model's VAE, or a tiny one (AutoencoderTiny), decoding as the pipeline does."""

    vae: Any
    image_processor: Any

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> Image.Image:
        config = self.vae.config
        shift = getattr(config, "shift_factor", None) or 0.0
        scaled = latents.to(self.vae.device, self.vae.dtype) / config.scaling_factor + shift
        decoded = self.vae.decode(scaled, return_dict=False)[0]
        picture: Image.Image = self.image_processor.postprocess(decoded, output_type="pil")[0]
        return picture


@dataclass(frozen=True)
class LatentToRgb:
    """RGB in [-1, 1] as an affine function of a latent pixel's channels: `rows` (C x 3) and `bias`."""

    rows: tuple[tuple[float, float, float], ...]
    bias: tuple[float, float, float]
    scale: int  # picture pixels per latent pixel

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> Image.Image:
        rows = torch.tensor(self.rows, dtype=torch.float32)
        rgb = torch.einsum("chw,cd->hwd", latents[0].float().cpu(), rows) + torch.tensor(self.bias)
        pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        height, width = pixels.shape[:2]
        return Image.fromarray(np.ascontiguousarray(pixels)).resize(
            (width * self.scale, height * self.scale), Image.Resampling.BILINEAR
        )

    def to_json(self) -> str:
        return json.dumps({"rows": self.rows, "bias": self.bias, "scale": self.scale}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> LatentToRgb:
        data = json.loads(text)
        return cls(
            rows=tuple(tuple(float(v) for v in row) for row in data["rows"]),  # type: ignore[misc]
            bias=tuple(float(v) for v in data["bias"]),  # type: ignore[arg-type]
            scale=int(data["scale"]),
        )


@torch.no_grad()
def fit_latent_rgb(vae: Any, pictures: torch.Tensor | None = None, seed: int = 0) -> LatentToRgb:
    """The affine map from a latent pixel (in the pipeline's scaled space) to the colour the VAE
    decodes there, fitted by least squares on `pictures` (N, 3, H, W in [-1, 1]; by default random
    colour blocks and smooth colour fields) encoded and decoded by the VAE itself."""
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    if pictures is None:
        pictures = _fitting_pictures(scale, seed)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    sample = vae.encode(pictures.to(vae.device, vae.dtype)).latent_dist.mean
    decoded = vae.decode(sample, return_dict=False)[0].float().cpu().clamp(-1, 1)
    latents = (sample.float().cpu() - shift) * vae.config.scaling_factor
    colours = torch.nn.functional.avg_pool2d(decoded, scale)  # what each latent pixel became
    inputs = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    inputs = torch.cat([inputs, torch.ones(len(inputs), 1)], dim=1)
    solution = torch.linalg.lstsq(inputs, colours.permute(0, 2, 3, 1).reshape(-1, 3)).solution
    rows = tuple(tuple(round(float(v), 6) for v in row) for row in solution[:-1].tolist())
    return LatentToRgb(rows=rows, bias=tuple(round(float(v), 6) for v in solution[-1].tolist()), scale=scale)  # type: ignore[arg-type]


def _fitting_pictures(scale: int, seed: int) -> torch.Tensor:
    """Blocks of one colour (two latent pixels a side) and smooth colour fields, small: a fit at the
    first preview costs one encode and decode of eight pictures of 16 latent pixels a side."""
    generator = torch.Generator().manual_seed(seed)
    side = _FIT_CELLS * 2 * scale
    blocks = torch.rand(_FIT_PICTURES // 2, 3, _FIT_CELLS, _FIT_CELLS, generator=generator) * 2 - 1
    blocks = blocks.repeat_interleave(2 * scale, -1).repeat_interleave(2 * scale, -2)
    coarse = torch.rand(_FIT_PICTURES // 2, 3, 4, 4, generator=generator) * 2 - 1
    smooth = torch.nn.functional.interpolate(coarse, size=(side, side), mode="bicubic").clamp(-1, 1)
    return torch.cat([blocks, smooth])


def shipped_latent_rgb(source: str) -> LatentToRgb | None:
    """A fitted map a model folder ships (`latent_rgb.json`), if any."""
    path = Path(source).expanduser() / LATENT_RGB_FILE
    return LatentToRgb.from_json(path.read_text(encoding="utf-8")) if path.is_file() else None
