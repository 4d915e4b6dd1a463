from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generation.errors import PromptError
from generation.prompt import (
    FLAG_FORMS,
    ParsedPrompt,
    apply_preferences,
    check_option_name,
    expand_permutations,
    parse_prompt,
)
from generation.specs import MAX_PROMPT_CHARS, AdapterRef


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a red circle", ParsedPrompt(text="a red circle")),
        ("  a   red\tcircle  ", ParsedPrompt(text="a red circle")),
        ("a fox --ar 16:9", ParsedPrompt(text="a fox", aspect=(16, 9))),
        ("a fox --ar 1920:1080", ParsedPrompt(text="a fox", aspect=(16, 9))),
        ("a fox --aspect 2:3", ParsedPrompt(text="a fox", aspect=(2, 3))),
        ("a fox —ar 3:2", ParsedPrompt(text="a fox", aspect=(3, 2))),
        ("a fox --seed 42", ParsedPrompt(text="a fox", seed=42)),
        ("a fox --seed 4294967295", ParsedPrompt(text="a fox", seed=4294967295)),
        ("a fox --no blur, text", ParsedPrompt(text="a fox", negative="blur, text")),
        ("a fox --steps 30 --cfg 6.5", ParsedPrompt(text="a fox", steps=30, cfg=6.5)),
        ("a fox --cfg 0", ParsedPrompt(text="a fox", cfg=0.0)),
        ("a fox --chaos 100", ParsedPrompt(text="a fox", chaos=100)),
        ("a fox --c 5", ParsedPrompt(text="a fox", chaos=5)),
        ("wallpaper --tile", ParsedPrompt(text="wallpaper", tile=True)),
        ("a fox --model sd15", ParsedPrompt(text="a fox", model="sd15")),
        ("a --SEED 7", ParsedPrompt(text="a", seed=7)),
        ("x--y is text", ParsedPrompt(text="x--y is text")),
        (
            "a <my-dog> in <style_1:0.7> --no <bad-hands:1.2>",
            ParsedPrompt(
                text="a <my-dog> in <style_1>",
                negative="<bad-hands>",
                adapters=(
                    AdapterRef(name="my-dog"),
                    AdapterRef(name="style_1", weight=0.7),
                    AdapterRef(name="bad-hands", weight=1.2),
                ),
            ),
        ),
        ("<aa> and <aa> again", ParsedPrompt(text="<aa> and <aa> again", adapters=(AdapterRef(name="aa"),))),
        ("a <cat:-0.5>", ParsedPrompt(text="a <cat>", adapters=(AdapterRef(name="cat", weight=-0.5),))),
    ],
)
def test_valid_prompts_parse(raw: str, expected: ParsedPrompt) -> None:
    assert parse_prompt(raw) == expected


def test_all_flags_together() -> None:
    parsed = parse_prompt(
        "a fox --ar 3:4 --seed 1 --no rain --steps 9 --cfg 3.5 --chaos 20 --tile --model m1"
    )
    assert parsed == ParsedPrompt(
        text="a fox",
        negative="rain",
        aspect=(3, 4),
        seed=1,
        steps=9,
        cfg=3.5,
        chaos=20,
        tile=True,
        model="m1",
    )


@pytest.mark.parametrize(
    ("raw", "flag", "fragment"),
    [
        ("a fox --foo 3", "foo", "unknown flag --foo"),
        ("a fox --", "", "unknown flag --"),
        ("a fox --ar 16x9", "ar", "--ar W:H"),
        ("a fox --ar 0:1", "ar", "--ar W:H"),
        ("a fox --ar 5:1", "ar", "from 1:4 to 4:1"),
        ("a fox --ar", "ar", "got nothing"),
        ("a fox --seed -1", "seed", "--seed N"),
        ("a fox --seed 4294967296", "seed", "--seed N"),
        ("a fox --seed 1.5", "seed", "--seed N"),
        ("a fox --steps 0", "steps", "1 to 150"),
        ("a fox --steps -5", "steps", "1 to 150"),
        ("a fox --steps 151", "steps", "1 to 150"),
        ("a fox --cfg 31", "cfg", "0 to 30"),
        ("a fox --cfg nan", "cfg", "0 to 30"),
        ("a fox --cfg inf", "cfg", "0 to 30"),
        ("a fox --chaos 101", "chaos", "0 to 100"),
        ("a fox --no", "no", "--no words"),
        ("a fox --tile please", "tile", "takes no value"),
        ("a fox --seed 1 --seed 2", "seed", "given twice"),
        ("a fox --model ../etc", "model", "--model NAME"),
    ],
)
def test_bad_flags_name_the_flag_and_its_form(raw: str, flag: str, fragment: str) -> None:
    with pytest.raises(PromptError) as caught:
        parse_prompt(raw)
    assert caught.value.flag == flag
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("--seed 4", "empty"),
        ("a <x>", "not a valid token reference"),
        ("a <has.dot>", "not a valid token reference"),
        ("a <ok:3>", "bad weight"),
        ("a <ok:abc>", "bad weight"),
        ("a <ok:>", "no weight"),
        ("a <ok:0.5> <ok:0.7>", "two weights"),
        ("a" * (MAX_PROMPT_CHARS + 1), "limit"),
    ],
)
def test_bad_prompt_text_is_explained(raw: str, fragment: str) -> None:
    with pytest.raises(PromptError, match=fragment):
        parse_prompt(raw)


def test_unknown_flag_error_lists_every_valid_flag() -> None:
    with pytest.raises(PromptError) as caught:
        parse_prompt("a fox --sharpness 100")  # (--stylize is Midjourney's: accepted, see below)
    for flag in FLAG_FORMS:
        assert f"--{flag}" in str(caught.value)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_raises_prompt_error(raw: str) -> None:
    try:
        parsed = parse_prompt(raw)
    except PromptError:
        return
    assert parsed.text.strip() == parsed.text and parsed.text


_flagish = st.sampled_from(
    ["--ar", "--seed", "--no", "--steps", "--cfg", "--chaos", "--tile", "--model", "--x", "<", ">", ":", "—"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_flagish, st.text(alphabet="abc019:.-<> ", max_size=8)), max_size=12))
def test_flag_soup_parses_or_raises_prompt_error(words: list[str]) -> None:
    with contextlib.suppress(PromptError):
        parse_prompt(" ".join(words))


@given(st.integers(0, 2**32 - 1), st.integers(1, 150), st.integers(0, 100))
def test_parsed_values_round_trip(seed: int, steps: int, chaos: int) -> None:
    parsed = parse_prompt(f"a fox --seed {seed} --steps {steps} --chaos {chaos}")
    assert (parsed.seed, parsed.steps, parsed.chaos) == (seed, steps, chaos)


def test_saved_defaults_fill_only_what_a_prompt_leaves_open() -> None:
    from generation.prompt import parse_defaults, with_defaults

    defaults = parse_defaults("--ar 3:2 --steps 30 --no blur --chaos 20 --model sd15")
    typed = with_defaults(parse_prompt("a cat --steps 10 --chaos 0"), defaults)
    assert (typed.aspect, typed.steps, typed.negative, typed.chaos, typed.model) == (
        (3, 2),
        10,
        "blur",
        0,
        "sd15",
    )
    assert with_defaults(parse_prompt("a dog --no rain"), defaults).negative == "rain"
    for bad in ("--seed 3", "--tile", "<rex>", "--steps lots"):
        with pytest.raises(PromptError):
            parse_defaults(bad)


def test_a1111_lora_syntax_means_the_same_token() -> None:
    """A prompt pasted from A1111 or a model site writes LoRAs as <lora:name:weight>."""
    pasted = parse_prompt("a fox <lora:add_detail:0.6>, snow <LyCO:film-grain> --no <lora:bad-hands:1.2>")
    ours = parse_prompt("a fox <add_detail:0.6>, snow <film-grain> --no <bad-hands:1.2>")
    assert pasted == ours
    assert [(ref.name, ref.weight) for ref in pasted.adapters] == [
        ("add_detail", 0.6), ("film-grain", 1.0), ("bad-hands", 1.2)
    ]  # fmt: skip
    with pytest.raises(PromptError, match="bad weight"):
        parse_prompt("a fox <lora:add_detail:0.6:0.4>")  # A1111's separate text-encoder weight


@pytest.mark.parametrize(
    ("raw", "version", "habits"),
    [
        ("a cat --v 6 --stylize 250 --style raw --q 2", "6", ("--stylize 250", "--style raw", "--q 2")),
        ("a cat --niji 6 --s 50 --w 100", "niji 6", ("--s 50", "--w 100")),
        ("a cat --niji", "niji", ()),
        ("a cat --version 5.2 --quality .5", "5.2", ("--quality .5",)),
        ("a cat --ar 3:2 --weird 3000 --seed 4", None, ("--weird 3000",)),
    ],
)
def test_midjourneys_habit_flags_never_fail_a_prompt(
    raw: str, version: str | None, habits: tuple[str, ...]
) -> None:
    parsed = parse_prompt(raw)
    assert parsed.text == "a cat"
    assert (parsed.version, parsed.habits) == (version, habits)


def test_habit_flags_do_not_hide_the_real_ones() -> None:
    parsed = parse_prompt("a cat --s 750 --ar 3:2 --no dogs --seed 9")
    assert (parsed.aspect, parsed.negative, parsed.seed, parsed.habits) == ((3, 2), "dogs", 9, ("--s 750",))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a cat", ["a cat"]),
        ("a {red, blue} bird", ["a red bird", "a blue bird"]),
        (
            "a {red,blue} {cat, dog} --ar {1:1, 2:1}",
            [f"a {c} {a} --ar {r}" for c in ("red", "blue") for a in ("cat", "dog") for r in ("1:1", "2:1")],
        ),
        ("a \\{literal\\} brace", ["a {literal} brace"]),
    ],
)
def test_permutations_multiply_left_to_right(raw: str, expected: list[str]) -> None:
    assert expand_permutations(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("a {red, blue bird", "a `{` is not closed"),
        ("a red} bird", "a `}` closes no `{`"),
        ("a {red, {dark, light} blue}", "cannot be nested"),
        ("{a,b} {c,d} {e,f} {g,h} {i,j}", "more than 16 prompts"),
    ],
)
def test_bad_permutations_are_explained(raw: str, fragment: str) -> None:
    with pytest.raises(PromptError, match=re.escape(fragment)):
        expand_permutations(raw)


@pytest.mark.parametrize("argument", ["1", "5", "two", ""])
def test_repeat_is_two_to_four(argument: str) -> None:
    with pytest.raises(PromptError, match=re.escape("--repeat N (2 to 4")):
        parse_prompt(f"a cat --repeat {argument}")


@pytest.mark.parametrize(
    ("raw", "suffix", "options", "expected"),
    [
        ("a cat --mine", "", {"mine": "--ar 3:2 --cfg 5"}, "a cat --ar 3:2 --cfg 5"),
        (
            "a cat --ar 1:1",
            "--ar 3:2 --no blur",
            {},
            "a cat --ar 1:1 --no blur",
        ),  # the prompt's own flag wins
        ("a cat --aspect 1:1", "--ar 3:2", {}, "a cat --aspect 1:1"),  # also under another name
        ("a cat", "highly detailed --no blur", {}, "a cat highly detailed --no blur"),
        ("a cat --mine --seed 3", "sharp", {"mine": "--ar 2:1"}, "a cat sharp --ar 2:1 --seed 3"),
        ("a cat --mineral", "", {"mine": "--ar 2:1"}, "a cat --mineral"),  # whole flags only
    ],
)
def test_preferences_write_out_option_sets_and_add_the_suffix(
    raw: str, suffix: str, options: dict[str, str], expected: str
) -> None:
    assert apply_preferences(raw, suffix, options) == expected


@pytest.mark.parametrize(("name", "fragment"), [("ar", "already a flag"), ("s", "already a flag"),
                                                ("no spaces", "1-20 letters"), ("", "1-20 letters")])  # fmt: skip
def test_option_set_names_cannot_shadow_flags(name: str, fragment: str) -> None:
    with pytest.raises(PromptError, match=fragment):
        check_option_name(name)


@pytest.mark.parametrize("argument", ["5", "101", "half", ""])
def test_stop_is_ten_to_a_hundred_percent(argument: str) -> None:
    with pytest.raises(PromptError, match=re.escape("--stop N (10 to 100")):
        parse_prompt(f"a cat --stop {argument}")


def test_weights_that_make_no_sense_fail_at_parse_time_not_in_a_job() -> None:
    with pytest.raises(PromptError, match="add up to more than 0"):
        parse_prompt("fruit::-1 --ar 2:1")
    with pytest.raises(PromptError, match="from 0 to 5"):
        parse_prompt("a cat --no (dog:7)")
    assert parse_prompt("a (red:1.3) cat::2 dog --no [blur]").text == "a (red:1.3) cat::2 dog"
