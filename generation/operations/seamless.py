"""Seamless tiling: circular padding in every convolution, so the image wraps around at its edges."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def seamless_tiling(*models: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, the models' Conv2d layers pad circularly; their own modes are restored after."""
    if not enabled:
        yield
        return
    convs = [module for model in models for module in model.modules() if isinstance(module, nn.Conv2d)]
    saved = [conv.padding_mode for conv in convs]
    try:
        for conv in convs:
            conv.padding_mode = "circular"
        yield
    finally:
        for conv, mode in zip(convs, saved, strict=True):
            conv.padding_mode = mode
