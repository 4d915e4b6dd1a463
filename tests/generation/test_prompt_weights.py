"""The weight syntax people paste: A1111's brackets and Midjourney's `::` parts, read as those tools
read them, and refused in one line where the weights make no sense."""

from __future__ import annotations

import pytest

from generation.errors import PromptError
from generation.prompt_weights import negative_fragments, weigh


def _fragments(text: str) -> list[tuple[str, float]]:
    (part,) = weigh(text).parts
    return [(fragment, round(weight, 4)) for fragment, weight in part.fragments]


def test_text_without_syntax_is_plain_and_kept_as_typed() -> None:
    for text in ("a red fox: in the snow", "a cat) on a mat", "50% off \\ sale", "C++ code"):
        prompt = weigh(text)
        assert prompt.plain and prompt.parts[0].fragments == ((text, 1.0),), text


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("a (red) fox", [("a ", 1.0), ("red", 1.1), (" fox", 1.0)]),
        ("a ((red)) fox", [("a ", 1.0), ("red", 1.21), (" fox", 1.0)]),
        ("a [red] fox", [("a ", 1.0), ("red", 0.9091), (" fox", 1.0)]),
        ("a (red fox:1.3) in snow", [("a ", 1.0), ("red fox", 1.3), (" in snow", 1.0)]),
        ("a (red (fox:2)) x", [("a ", 1.0), ("red ", 1.1), ("fox", 2.2), (" x", 1.0)]),
        ("a (red fox", [("a ", 1.0), ("red fox", 1.1)]),  # unclosed: to the end, as A1111
        ("a \\(red\\) fox", [("a (red) fox", 1.0)]),  # escaped brackets are text
        ("(a:0) b", [("a", 0.0), (" b", 1.0)]),
    ],
)
def test_a1111_attention_brackets(text: str, fragments: list[tuple[str, float]]) -> None:
    assert _fragments(text) == fragments
    assert not weigh(text).plain


def test_midjourney_parts_carry_their_weights() -> None:
    prompt = weigh("a cat::2 a dog::1 a bird")
    assert [(part.text, part.weight) for part in prompt.parts] == [
        ("a cat", 2.0),
        ("a dog", 1.0),
        ("a bird", 1.0),
    ]
    assert not prompt.plain and prompt.text == "a cat a dog a bird"
    assert [(p.text, p.weight) for p in weigh("hot:: dog").parts] == [("hot", 1.0), ("dog", 1.0)]
    assert [(p.text, p.weight) for p in weigh("space::.5 ship").parts] == [("space", 0.5), ("ship", 1.0)]
    assert len(weigh("ratio 1::2dogs").parts) == 2  # a weight must stand alone; `2dogs` is text


def test_negative_parts_join_the_negative_prompt_as_midjourney_defines_them() -> None:
    prompt = weigh("still life painting:: fruit::-0.5")
    assert [part.text for part in prompt.parts] == ["still life painting"]
    assert [(part.text, part.weight) for part in prompt.avoided] == [("fruit", -0.5)]
    assert negative_fragments("", prompt.avoided) == (("fruit", 1.0),)  # `::-.5` is `--no`
    assert negative_fragments("blur", weigh("a::2 b::-1").avoided) == (("blur", 1.0), (", ", 1.0), ("b", 2.0))
    assert negative_fragments("") == (("", 1.0),)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("fruit::-1", "add up to more than 0"),
        ("a::1 b::-2", "add up to more than 0"),
        ("a (cat:9)", "from 0 to 5"),
        ("a (cat:1.2.3)", "not a weight"),
        ("a::5000 b", "too large"),
    ],
)
def test_weights_that_make_no_sense_are_refused_in_one_line(text: str, words: str) -> None:
    with pytest.raises(PromptError, match=words):
        weigh(text)


def test_a_negative_weight_inside_no_is_refused() -> None:
    with pytest.raises(PromptError, match="--no"):
        negative_fragments("blur::-1")
