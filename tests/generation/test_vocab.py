from __future__ import annotations

from pathlib import Path

from transformers import CLIPTokenizer

from generation.vocab import END_TOKEN, START_TOKEN, build_clip_tokenizer


def test_known_words_are_single_tokens() -> None:
    tokenizer = build_clip_tokenizer(["red", "circle", "background"])
    tokens = tokenizer.tokenize("Red circle background")
    assert tokens == ["red</w>", "circle</w>", "background</w>"]


def test_any_text_round_trips_through_the_byte_alphabet() -> None:
    tokenizer = build_clip_tokenizer(["red"])
    text = "zebra über 東京 ✨"
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids[1:-1]
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == text


def test_special_tokens_are_the_last_ids_like_clip() -> None:
    tokenizer = build_clip_tokenizer(["a", "b"])
    assert tokenizer.convert_tokens_to_ids([START_TOKEN, END_TOKEN]) == [
        len(tokenizer) - 2,
        len(tokenizer) - 1,
    ]
    assert tokenizer.model_max_length == 77


def test_saved_tokenizer_loads_back_identically(tmp_path: Path) -> None:
    tokenizer = build_clip_tokenizer(["red", "circle"])
    tokenizer.save_pretrained(tmp_path)
    loaded = CLIPTokenizer.from_pretrained(tmp_path)
    text = "a red circle on a plain wall"
    assert loaded(text).input_ids == tokenizer(text).input_ids
    assert len(loaded) == len(tokenizer) and loaded.model_max_length == 77


def test_words_built_from_other_words_pieces_are_still_one_token() -> None:
    # "an" and "and" merge (a, n) early; "orange" and "banana" must still come out whole.
    words = ["a", "an", "and", "orange", "banana", "bandana", "or", "range"]
    tokenizer = build_clip_tokenizer(words)
    for word in words:
        assert tokenizer.tokenize(word) == [f"{word}</w>"]
