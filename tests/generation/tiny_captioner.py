"""A tiny random BLIP captioner in transformers' folder layout, built offline (vocabulary, processor
and weights made here): what a deployment's `describer = "Salesforce/blip-image-captioning-large"`
loads, at a size a test can run."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = [
    "a",
    "an",
    "the",
    "red",
    "blue",
    "green",
    "circle",
    "square",
    "star",
    "on",
    "of",
    "background",
    "picture",
    "photo",
    "small",
    "large",
    "with",
]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_blip(folder: Path, seed: int = 0) -> Path:
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + WORDS) + "\n", encoding="utf-8")
    processor = BlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}),
        tokenizer=BertTokenizer(str(vocab)),
    )
    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
    config = BlipConfig(
        text_config={**small, "vocab_size": len(SPECIAL + WORDS), "max_position_embeddings": 64,
                     "bos_token_id": 2, "sep_token_id": 3, "pad_token_id": 0},
        vision_config={**small, "image_size": 32, "patch_size": 8, "initializer_range": 1.0},
        projection_dim=32,
    )  # fmt: skip
    torch.manual_seed(seed)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    vocab.unlink()  # the processor saved its own tokenizer files
    return folder
