"""Importing a LoRA or embedding file into the library (/library import): the spec."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from generation.specs.base import (
    ADAPTER_KIND_NAMES,
    ADAPTER_NAME_PATTERN,
    SHA256_PATTERN,
    AdapterKind,
    AdapterRef,
    _Spec,
)


class ImportSpec(_Spec):
    """Check that an uploaded LoRA or embedding loads into a base model, then add it to the library."""

    kind: Literal["import"] = "import"
    model: str = Field(min_length=1, max_length=64)
    name: str = Field(pattern=ADAPTER_NAME_PATTERN)
    adapter_kind: AdapterKind
    file: str = Field(pattern=SHA256_PATTERN)
    trigger: str = Field(default="", max_length=200)
    tags: str = Field(default="", max_length=200)  # a kohya LoRA's most frequent caption tags, shown

    def files(self) -> tuple[str, ...]:
        return (self.file,)

    def needs(self) -> frozenset[str]:
        return frozenset({self.adapter_kind})

    def library_name(self) -> str:
        return self.name

    def title(self) -> str:
        return f"importing <{self.name}> ({ADAPTER_KIND_NAMES[self.adapter_kind]})"

    def files_done_with(self, *, succeeded: bool) -> tuple[str, ...]:
        return () if succeeded else (self.file,)  # a refused file is kept by nothing

    def ref(self) -> AdapterRef:
        return AdapterRef(name=self.name, kind=self.adapter_kind, file=self.file, trigger=self.trigger)
