"""The strict safetensors header check: every malformed file gets one short, clear AdapterFileError
(never a TypeError, IndexError or RecursionError), and what it accepts the safetensors library loads."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load, save

from generation.models.adapter_files import (
    MAX_HEADER_BYTES,
    MAX_TENSORS,
    AdapterFileError,
    inspect_adapter_file,
    read_header,
)

F32_2x2 = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}


def _file(header: Any, body: bytes = b"\0" * 16) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _lora(**entries: Any) -> bytes:
    return _file({f"unet.lora_A.{name}": entry for name, entry in entries.items()}, b"\0" * 32)


MALFORMED: dict[str, tuple[bytes, str]] = {
    "too short": (b"\x01\x00", "too short"),
    "header past the end": (struct.pack("<Q", 10_000) + b"{}", "runs past the end"),
    "header over the bound": (struct.pack("<Q", MAX_HEADER_BYTES + 1) + b" " * (MAX_HEADER_BYTES + 1), "over 16 MiB"),
    "not an object": (_file([1, 2, 3]), "not a JSON object"),
    "a bare string": (_file(b'"lora_A"'), "not a JSON object"),
    "invalid JSON": (_file(b'{"a": '), "not valid JSON"),
    "invalid UTF-8": (_file(b'{"\xff\xfe": 1}'), "not valid JSON"),
    "nested too deeply": (_file(b"{" + b'"a":' * 1 + b"[" * 200_000 + b"]" * 200_000 + b"}"), "nested too deeply"),
    "duplicate names": (_file(b'{"lora_A.x": %s, "lora_A.x": %s}' % ((json.dumps(F32_2x2).encode(),) * 2)), "not valid JSON"),
    "entry not an object": (_file({"lora_A.x": 5}), "exactly dtype, shape and data_offsets"),
    "entry is a list": (_file({"lora_A.x": [1, 2]}), "exactly dtype, shape and data_offsets"),
    "missing offsets": (_file({"lora_A.x": {"dtype": "F32", "shape": [4]}}), "exactly dtype"),
    "extra key": (_file({"lora_A.x": {**F32_2x2, "evil": 1}}), "exactly dtype"),
    "unknown dtype": (_file({"lora_A.x": {**F32_2x2, "dtype": "F17"}}), "unknown dtype"),
    "dtype not a string": (_file({"lora_A.x": {**F32_2x2, "dtype": ["F32"]}}), "unknown dtype"),
    "integer weights": (_file({"lora_A.x": {**F32_2x2, "dtype": "I32"}}), "floating point"),
    "shape not a list": (_file({"lora_A.x": {**F32_2x2, "shape": 4}}), "malformed shape"),
    "negative size": (_file({"lora_A.x": {**F32_2x2, "shape": [-2, -2]}}), "malformed shape"),
    "boolean size": (_file({"lora_A.x": {**F32_2x2, "shape": [True, 4]}}), "malformed shape"),
    "float size": (_file({"lora_A.x": {**F32_2x2, "shape": [2.0, 2]}}), "malformed shape"),
    "huge rank": (_file({"lora_A.x": {**F32_2x2, "shape": [1] * 9 + [4]}}), "malformed shape"),
    "one offset": (_file({"lora_A.x": {**F32_2x2, "data_offsets": [16]}}), "malformed data_offsets"),
    "three offsets": (_file({"lora_A.x": {**F32_2x2, "data_offsets": [0, 8, 16]}}), "malformed data_offsets"),
    "offsets backwards": (_file({"lora_A.x": {**F32_2x2, "data_offsets": [16, 0]}}), "malformed data_offsets"),
    "offsets as text": (_file({"lora_A.x": {**F32_2x2, "data_offsets": ["0", "16"]}}), "malformed data_offsets"),
    "size mismatch": (_file({"lora_A.x": {**F32_2x2, "data_offsets": [0, 12]}}), "do not match its byte size"),
    "overflowing shape": (_file({"lora_A.x": {**F32_2x2, "shape": [2**40, 2**40]}}), "do not match its byte size"),
    "overlap": (_lora(a=F32_2x2, b=F32_2x2), "overlaps another or leaves a gap"),
    "gap": (_lora(a={**F32_2x2, "data_offsets": [16, 32]}, b={**F32_2x2, "data_offsets": [32, 48]}), "gap"),
    "cut off": (_file({"lora_A.x": F32_2x2}, b"\0" * 8), "cut off"),
    "trailing bytes": (_file({"lora_A.x": F32_2x2}, b"\0" * 20), "bytes after its last tensor"),
    "metadata not strings": (_file({"__metadata__": {"a": 1}, "lora_A.x": F32_2x2}), "map names to strings"),
    "metadata a list": (_file({"__metadata__": ["a"], "lora_A.x": F32_2x2}), "map names to strings"),
    "newline in a name": (_file({"lora_A.x\nINFO forged log line": F32_2x2}), "control characters"),
    "empty name": (_file({"": F32_2x2}), "control characters"),
    "too many tensors": (
        _file({f"lora_A.{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(MAX_TENSORS + 1)}, b""),
        "at most 10,000",
    ),
    "no tensors": (_file({}, b""), "holds no tensors"),
    "neither kind": (_file({"a": F32_2x2, "b": {**F32_2x2, "data_offsets": [16, 32]}}, b"\0" * 32), "neither a LoRA"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MALFORMED))
def test_every_malformed_header_gets_one_clear_message(case: str) -> None:
    data, reason = MALFORMED[case]
    with pytest.raises(AdapterFileError, match=reason) as caught:
        inspect_adapter_file(data, "upload.safetensors")
    assert len(str(caught.value)) < 160 and "\n" not in str(caught.value)


def test_what_the_check_accepts_safetensors_loads() -> None:
    tensors = {
        "unet.x.lora_A.weight": torch.randn(4, 8),
        "unet.x.lora_B.weight": torch.randn(8, 4, dtype=torch.float16),
    }
    data = save(tensors, {"dreamcord.trigger": "sks"})
    info = inspect_adapter_file(data, "mine.safetensors")
    assert (info.kind, info.tensors, info.trigger) == ("lora", 2, "sks")
    entries, _ = read_header(data)
    assert {e.name: e.shape for e in entries} == {name: tuple(t.shape) for name, t in tensors.items()}


def test_random_damage_to_a_valid_file_is_refused_or_still_loadable() -> None:
    """Flip bytes in the header of a real file: the check either refuses it with AdapterFileError or
    accepts something the safetensors library loads."""
    data = bytearray(save({f"unet.{i}.lora_A.weight": torch.randn(3, 5) for i in range(6)}))
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    rng = random.Random(0)
    accepted = 0
    for _ in range(2_000):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(8, header_end)] = rng.randrange(256)
        try:
            inspect_adapter_file(bytes(damaged))
        except AdapterFileError:
            continue
        load(bytes(damaged))  # accepted: must load
        accepted += 1
    assert accepted < 2_000  # the damage did hit something


def test_kohya_tags_are_ranked_by_use_and_malformed_metadata_gives_none() -> None:
    from generation.models.adapter_files import most_frequent_tags

    frequency = {"10_a": {"hexy": 12, "blue  shape": 3, " ": 99}, "5_b": {"outline": 4, "hexy": 5}}
    assert most_frequent_tags(json.dumps(frequency)) == "hexy, outline, blue shape"
    assert (
        most_frequent_tags(json.dumps({"a": {f"tag{i}": i for i in range(20)}}), limit=3)
        == "tag19, tag18, tag17"
    )
    for malformed in ("", "{", "[1, 2]", '{"a": [1]}', '{"a": {"x": "many"}}', "null"):
        assert most_frequent_tags(malformed) == ""
    long = most_frequent_tags(json.dumps({"a": {"x" * 150: 2, "y" * 150: 1}}))
    assert long == "x" * 150  # cut at a tag, within 200 characters


@given(st.text(max_size=300))
def test_any_tag_metadata_gives_a_short_line(text: str) -> None:
    from generation.models.adapter_files import most_frequent_tags

    tags = most_frequent_tags(text)
    assert len(tags) <= 200 and "\n" not in tags
