"""/describe: four prompt suggestions for a picture, each one press from an /imagine. The spec."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from generation.specs.base import SHA256_PATTERN, _Spec

SUGGESTIONS = 4  # what /describe offers, as Midjourney does


class DescribeSpec(_Spec):
    """Describe the picture `source` in words `model` draws from: its configured describer (a
    captioning model, or the bundled model's own) reads the picture and suggests prompts."""

    kind: Literal["describe"] = "describe"
    model: str = Field(min_length=1, max_length=64)
    source: str = Field(pattern=SHA256_PATTERN)

    def files(self) -> tuple[str, ...]:
        return (self.source,)

    def needs(self) -> frozenset[str]:
        return frozenset({"describe"})

    def title(self) -> str:
        return "describing a picture"
