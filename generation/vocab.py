"""A CLIP BPE vocabulary built offline from a word list, for models that ship their own text encoder.

CLIP's tokenizer is byte-level BPE with `</w>` marking the end of a word. We keep its full byte
alphabet (so any text tokenizes, letter by letter at worst) and add one chain of merges per known word,
so each known word becomes a single token.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from functools import cache

from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
MAX_TOKENS = 77  # CLIP's context length; a bare vocab file would otherwise give 1e30


@cache
def _byte_alphabet() -> tuple[str, ...]:
    """CLIP's reversible byte -> printable character table (same as GPT-2's)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    table = dict(zip(printable, codes, strict=True))
    return tuple(chr(table[byte]) for byte in range(256))


def _word_pieces(word: str) -> list[str]:
    alphabet = _byte_alphabet()
    pieces = [alphabet[byte] for byte in word.encode("utf-8")]
    pieces[-1] += "</w>"
    return pieces


def build_vocabulary(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return (vocab, merges) in CLIP's order: bytes, bytes+</w>, merged pieces, then the two specials.

    For each word we first apply the merges made so far (as BPE will), then join what is left with
    new, lower-priority merges: a word made of earlier words' pieces still ends up as one token.
    """
    alphabet = _byte_alphabet()
    tokens: list[str] = list(alphabet) + [char + "</w>" for char in alphabet]
    known = set(tokens)
    ranks: dict[tuple[str, str], int] = {}
    for word in sorted({w.lower() for w in words if w.strip()}):
        pieces = _apply_merges(_word_pieces(word), ranks)
        current = pieces[0]
        for piece in pieces[1:]:
            ranks[(current, piece)] = len(ranks)
            current += piece
            if current not in known:
                known.add(current)
                tokens.append(current)
    tokens += [START_TOKEN, END_TOKEN]
    return {token: index for index, token in enumerate(tokens)}, list(ranks)


def _apply_merges(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encoding of one word: repeatedly join the adjacent pair with the best rank."""
    while len(pieces) > 1:
        rank, index = min(
            (ranks.get(pair, len(ranks)), i) for i, pair in enumerate(itertools.pairwise(pieces))
        )
        if rank == len(ranks):
            break
        pieces = [*pieces[:index], pieces[index] + pieces[index + 1], *pieces[index + 2 :]]
    return pieces


def build_clip_tokenizer(words: Iterable[str]) -> CLIPTokenizer:
    """A CLIPTokenizer whose vocabulary knows `words` as whole tokens; `save_pretrained` writes its files."""
    vocab, merges = build_vocabulary(words)
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]  # tokenizers wants tuples
        model_max_length=MAX_TOKENS,
        unk_token=END_TOKEN,
        bos_token=START_TOKEN,
        eos_token=END_TOKEN,
        pad_token=END_TOKEN,
    )


def clip_text_encoder(
    tokenizer: CLIPTokenizer, *, width: int, layers: int, heads: int, mlp: int
) -> CLIPTextModel:
    """A randomly initialised CLIP text encoder sized for `tokenizer` (its vocabulary and special ids)."""
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=width,
            intermediate_size=mlp,
            num_attention_heads=heads,
            num_hidden_layers=layers,
            max_position_embeddings=tokenizer.model_max_length,
            projection_dim=width,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
