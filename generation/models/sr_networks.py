"""Super-resolution networks of the ESRGAN family, read from one `.safetensors` file in the layout their
authors publish, as model sites (OpenModelDB) distribute them: Real-ESRGAN's compact `SRVGGNetCompact`
(what the bundled upscaler is) and ESRGAN's `RRDBNet` (BasicSR's key names, or the original ESRGAN
repository's `model.N…` names of 4x files such as 4x-UltraSharp).

The usual loader for these files, spandrel, imports torchvision, which has no build for the CPU
torch dreamcord tests on; so the two architectures are written here, class for class and key for key
as in Real-ESRGAN/BasicSR, and read their files as spandrel would (same detection rules: the scale and
widths from the tensors' shapes). Only safetensors are read; anything else is refused unopened.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from generation.errors import ModelLoadError


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact network: `num_conv` 3x3 convolutions with PReLU at low resolution, a
    pixel shuffle, and the nearest-neighbour upscaled input added (it learns the residual)."""

    def __init__(self, num_feat: int = 64, num_conv: int = 16, upscale: int = 4) -> None:
        super().__init__()
        self.upscale = upscale
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        layers.append(nn.Conv2d(num_feat, 3 * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        shuffled: torch.Tensor = self.upsampler(out)
        return shuffled + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


class _DenseBlock(nn.Module):
    def __init__(self, feat: int, grow: int) -> None:
        super().__init__()
        for index in range(1, 6):
            out = feat if index == 5 else grow
            setattr(self, f"conv{index}", nn.Conv2d(feat + (index - 1) * grow, out, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for index in range(1, 5):
            conv = getattr(self, f"conv{index}")
            features.append(F.leaky_relu(conv(torch.cat(features, 1)), 0.2))
        out: torch.Tensor = getattr(self, "conv5")(torch.cat(features, 1))  # noqa: B009 (set by name)
        return out * 0.2 + x


class _RRDB(nn.Module):
    def __init__(self, feat: int, grow: int) -> None:
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (_DenseBlock(feat, grow) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator (BasicSR's names): residual-in-residual dense blocks, then two nearest 2x
    upsamplings. At scale 2 (or 1) the input is pixel-unshuffled first, as Real-ESRGAN's x2 model does."""

    def __init__(
        self, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32, scale: int = 4
    ) -> None:
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(3 * (16 // (scale * scale)), num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(_RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.pixel_unshuffle(x, 4 // self.scale) if self.scale < 4 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        out: torch.Tensor = self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
        return out


@dataclass(frozen=True)
class SrNetwork:
    """A loaded network, its architecture's name and its scale (output side / input side)."""

    module: nn.Module
    architecture: str
    scale: int

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in 0-1 → (N, 3, H*scale, W*scale) in 0-1."""
        parameter = next(self.module.parameters())
        out: torch.Tensor = self.module(pixels.to(parameter.device, parameter.dtype))
        return out.float().clamp(0, 1)


def load_sr_network(path: str | Path) -> SrNetwork:
    """The network in a `.safetensors` file, or a one-line refusal saying what the file is not."""
    path = Path(path).expanduser()
    if path.suffix.lower() != ".safetensors":
        raise ModelLoadError(
            f"upscaler {path.name}: only .safetensors super-resolution files are read (a .pth is a pickle, "
            "which can run code when loaded)"
        )
    try:
        weights = load_file(str(path))
    except (OSError, RuntimeError) as error:
        raise ModelLoadError(f"upscaler {path.name} cannot be read: {error}") from None
    weights = {key.removeprefix("module."): value for key, value in weights.items()}
    try:
        network = _recognise(weights)
        network.module.load_state_dict(weights, strict=True)
    except (KeyError, RuntimeError, ValueError) as error:
        raise ModelLoadError(f"upscaler {path.name} is not a network dreamcord reads: {error}") from None
    network.module.eval()
    return network


def _recognise(weights: dict[str, torch.Tensor]) -> SrNetwork:
    """Which architecture the keys are, with its sizes read from the shapes (renaming old ESRGAN keys
    to BasicSR's in place)."""
    if "body.0.weight" in weights and "body.1.weight" in weights and weights["body.1.weight"].dim() == 1:
        last = max(int(m.group(1)) for key in weights if (m := re.match(r"body\.(\d+)\.weight", key)))
        scale = math.isqrt(weights[f"body.{last}.weight"].shape[0] // 3)
        module = SRVGGNetCompact(weights["body.0.weight"].shape[0], (last - 2) // 2, scale)
        return SrNetwork(module, "SRVGGNetCompact", scale)
    if "model.0.weight" in weights:
        weights.update(_basicsr_names(weights))
    if "conv_first.weight" in weights:
        blocks = 1 + max(int(m.group(1)) for key in weights if (m := re.match(r"body\.(\d+)\.rdb1", key)))
        scale = {3: 4, 12: 2, 48: 1}[weights["conv_first.weight"].shape[1]]
        feat, grow = weights["conv_first.weight"].shape[0], weights["body.0.rdb1.conv1.weight"].shape[0]
        return SrNetwork(RRDBNet(feat, blocks, grow, scale), "RRDBNet", scale)
    raise ValueError("neither SRVGGNetCompact nor RRDBNet (ESRGAN) keys")


def _basicsr_names(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original ESRGAN repository's 4x layout (`model.0`, `model.1.sub.N.RDB1.conv1.0`, …,
    `model.10`) under BasicSR's names; the old names are removed from `weights`."""
    blocks = max(int(m.group(1)) for key in weights if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", key)))
    renamed: dict[str, torch.Tensor] = {}
    fixed = {"model.0": "conv_first", f"model.1.sub.{blocks + 1}": "conv_body", "model.3": "conv_up1",
             "model.6": "conv_up2", "model.8": "conv_hr", "model.10": "conv_last"}  # fmt: skip
    for key in list(weights):
        if match := re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", key):
            block, dense, conv, kind = match.groups()
            renamed[f"body.{block}.rdb{dense}.conv{conv}.{kind}"] = weights.pop(key)
            continue
        stem, _, kind = key.rpartition(".")
        if stem in fixed:
            renamed[f"{fixed[stem]}.{kind}"] = weights.pop(key)
    return renamed
