"""Weights inside a prompt, in the two forms people paste:

- Midjourney's multi-prompts: `a cat::2 a dog::1` (the parts are blended, each by its share of the
  weights), `hot:: dog` (weight 1 each), and negative parts `fruit::-0.5` (Midjourney's own docs say
  `::-.5` is `--no`: such parts join the negative prompt, `::-0.5` at weight 1, `::-1` at 2);
- A1111's attention: `(word)` x1.1, `((word))` x1.21, `(word:1.3)`, `[word]` /1.1, `\\(` for a literal
  bracket. Unbalanced brackets behave as in A1111: a stray `)` is text, an unclosed `(` runs to the end.

`weigh` turns text into parts of (text, weight) fragments; the encoder (generation/models/
weighted_prompts.py) hands them to compel. A prompt without any of this syntax is `plain` and is
encoded by the pipeline itself, exactly as before weights existed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generation.errors import PromptError

Fragment = tuple[str, float]

ROUND_FACTOR = 1.1  # A1111's (word)
SQUARE_FACTOR = 1 / 1.1  # A1111's [word]
MAX_ATTENTION = 5.0  # (word:5) is already far past useful; beyond it the embedding is noise
MAX_PART_WEIGHT = 1000.0
NO_EQUALS = 0.5  # Midjourney: `thing::-.5` is the same as `--no thing`

# A weight directly after `::` (`a cat::2 `, `fruit::-.5`); `::` alone separates parts of weight 1.
_PART_RE = re.compile(r"::(-?(?:\d+(?:\.\d*)?|\.\d+))?(?=\s|$)|::")
# A1111's tokens: escapes, brackets, `:1.3)` closing a weighted bracket, and runs of plain text.
_ATTENTION_RE = re.compile(r"\\[()\[\]\\]|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:")


@dataclass(frozen=True)
class WeightedPart:
    fragments: tuple[Fragment, ...]
    weight: float = 1.0  # Midjourney's `::weight`

    @property
    def text(self) -> str:
        return " ".join("".join(text for text, _ in self.fragments).split())


@dataclass(frozen=True)
class WeightedPrompt:
    parts: tuple[WeightedPart, ...]  # positive weights, blended by their shares
    avoided: tuple[WeightedPart, ...] = ()  # negative weights: they go to the negative prompt
    plain: bool = True  # no weighting syntax at all: the text goes to the pipeline as typed

    @property
    def text(self) -> str:
        """The words without any syntax (what a single pooled embedding or a token count reads)."""
        return " ".join(part.text for part in self.parts if part.text)


def weigh(text: str) -> WeightedPrompt:
    """The parts and fragment weights of `text`; `PromptError` when the weights cannot make sense."""
    parts: list[WeightedPart] = []
    avoided: list[WeightedPart] = []
    for raw, weight in _split_parts(text):
        part = WeightedPart(_attention(raw), weight)
        if not part.text:
            continue
        (avoided if weight < 0 else parts).append(part)
    if not parts and not avoided:
        return WeightedPrompt(parts=(WeightedPart(((text, 1.0),)),), plain=True)
    if sum(part.weight for part in parts + avoided) <= 0:  # Midjourney's own rule
        raise PromptError(
            "the weights of a multi-prompt (`::`) must add up to more than 0: give what you want to see "
            "a positive weight (e.g. `still life::1 fruit::-0.5`)"
        )
    plain = len(parts) == 1 and not avoided and parts[0].weight == 1 and parts[0].fragments == ((text, 1.0),)
    return WeightedPrompt(parts=tuple(parts), avoided=tuple(avoided), plain=plain)


def negative_fragments(negative: str, avoided: tuple[WeightedPart, ...] = ()) -> tuple[Fragment, ...]:
    """The negative prompt's fragments: its own text (A1111 weights apply; `::w` scales its part by
    w), then the parts the positive prompt gave negative weights, at |w| / 0.5."""
    fragments: list[Fragment] = []
    for raw, weight in _split_parts(negative):
        if weight < 0:
            raise PromptError("a weight in --no must be positive: --no already means 'avoid this'")
        fragments += [(text, value * weight) for text, value in _attention(raw)]
    for part in avoided:
        share = -part.weight / NO_EQUALS
        fragments += [(", ", 1.0)] if fragments else []
        fragments += [(text, value * share) for text, value in part.fragments]
    return tuple(fragments) or (("", 1.0),)


def _split_parts(text: str) -> list[tuple[str, float]]:
    """Midjourney's parts: the text before each `::` with the weight written after it (1 if none)."""
    parts: list[tuple[str, float]] = []
    start = 0
    for match in _PART_RE.finditer(text):
        weight = float(match.group(1)) if match.group(1) else 1.0
        if abs(weight) > MAX_PART_WEIGHT:
            raise PromptError(
                f"`::{match.group(1)}` is too large a weight; use -{MAX_PART_WEIGHT:g} to {MAX_PART_WEIGHT:g}"
            )
        parts.append((text[start : match.start()].strip(), weight))
        start = match.end()
    parts.append((text[start:].strip() if parts else text, 1.0))  # one part: the text as typed
    return parts


def _attention(text: str) -> tuple[Fragment, ...]:
    """A1111's attention brackets as (text, weight) fragments, runs of one weight merged."""
    texts: list[str] = []
    weights: list[float] = []
    round_starts: list[int] = []
    square_starts: list[int] = []

    def multiply_from(start: int, factor: float) -> None:
        weights[start:] = [weight * factor for weight in weights[start:]]

    for match in _ATTENTION_RE.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            texts.append(token[1])
            weights.append(1.0)
        elif token == "(":
            round_starts.append(len(texts))
        elif token == "[":
            square_starts.append(len(texts))
        elif weight is not None and round_starts:
            multiply_from(round_starts.pop(), _attention_weight(weight))
        elif token == ")" and round_starts:
            multiply_from(round_starts.pop(), ROUND_FACTOR)
        elif token == "]" and square_starts:
            multiply_from(square_starts.pop(), SQUARE_FACTOR)
        else:
            texts.append(token)
            weights.append(1.0)
    for start in round_starts:
        multiply_from(start, ROUND_FACTOR)
    for start in square_starts:
        multiply_from(start, SQUARE_FACTOR)
    merged: list[Fragment] = []
    for token, weight in zip(texts, weights, strict=True):
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + token, weight)
        else:
            merged.append((token, weight))
    return tuple(fragment for fragment in merged if fragment[0])


def _attention_weight(written: str) -> float:
    try:
        weight = float(written)
    except ValueError:
        raise PromptError(f"`:{written})` is not a weight; write it like `(word:1.3)`") from None
    if not 0 <= weight <= MAX_ATTENTION:
        raise PromptError(
            f"`(…:{written})` is out of range; attention weights go from 0 to {MAX_ATTENTION:g}"
        )
    return weight
