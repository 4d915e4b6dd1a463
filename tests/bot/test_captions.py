"""User text inside the bot's own formatting: escaped, bounded, and unable to close a code block."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.captions import code_block, shown_text


def test_markdown_in_a_prompt_is_shown_as_typed() -> None:
    assert shown_text("**bold** [link](https://x.y) _it_") == r"\*\*bold\*\* \[link](https://x.y) \_it\_"


@given(st.text(alphabet="ab*_`\\|~>[]", max_size=3000), st.integers(min_value=10, max_value=2000))
def test_shown_text_never_passes_its_limit_nor_ends_on_half_an_escape(text: str, limit: int) -> None:
    shown = shown_text(text, limit)
    assert len(shown) <= limit
    body = shown.removesuffix("…")
    assert (len(body) - len(body.rstrip("\\"))) % 2 == 0


@given(st.text(alphabet="`a\n", max_size=200))
def test_a_code_block_has_exactly_its_own_fences(text: str) -> None:
    block = code_block(text)
    assert block.startswith("```\n") and block.endswith("\n```")
    assert block.count("```") == 2
    assert block.replace("\u200b", "")[4:-4] == text  # nothing but zero-width spaces was added
