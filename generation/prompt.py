"""The Midjourney-style prompt language: free text, `<token>` references and trailing `--flags`.

    a red fox in the snow <my-style:0.7> --ar 16:9 --seed 42 --no blur, text --steps 30 --cfg 6.5

`parse_prompt` returns a `ParsedPrompt` or raises `PromptError` (one documented type) that names the
offending flag and its valid form.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from generation.errors import PromptError
from generation.prompt_weights import negative_fragments, weigh
from generation.specs import ADAPTER_NAME_PATTERN, MAX_PROMPT_CHARS, MAX_SEED, AdapterRef

MAX_ASPECT = 4.0  # widest (or tallest) ratio allowed: beyond it one side falls under a few latent pixels

# A flag starts a word: "--seed", or "—seed" as phones auto-correct it.
_FLAG_RE = re.compile(r"(?:^|(?<=\s))(?:--|—)([^\s]*)")
_TOKEN_REF_RE = re.compile(r"<([^<>\s]*)>")
# A1111's way of writing a LoRA in a prompt (and LyCORIS's): <lora:name:0.8> means our <name:0.8>.
_A1111_LORA_RE = re.compile(r"<(?:lora|lyco):([^<>\s]*)>", re.IGNORECASE)
_TOKEN_NAME_RE = re.compile(ADAPTER_NAME_PATTERN)
_INT_RE = re.compile(r"^\d+$", re.ASCII)
_FLOAT_RE = re.compile(r"^\d+(?:\.\d+)?$|^\.\d+$", re.ASCII)
_WEIGHT_RE = re.compile(r"^-?\d+(?:\.\d+)?$|^-?\.\d+$", re.ASCII)
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

FLAG_FORMS: dict[str, str] = {
    "ar": "--ar W:H (e.g. --ar 16:9, from 1:4 to 4:1)",
    "seed": f"--seed N (a whole number from 0 to {MAX_SEED})",
    "no": "--no words to avoid (e.g. --no text, blur)",
    "steps": "--steps N (1 to 150)",
    "cfg": "--cfg X (guidance, 0 to 30, e.g. --cfg 7.5)",
    "chaos": "--chaos N (0 to 100: how different the four images are)",
    "tile": "--tile (no value: makes a seamless, repeating pattern)",
    "turbo": "--turbo (no value: the model's few-step mode, faster and a little rougher; uses Fast time)",
    "model": "--model NAME (one of the configured models)",
    "repeat": "--repeat N (2 to 4: that many jobs of the same prompt)",
    "stop": "--stop N (10 to 100: stop at that percent of the steps, an unfinished, softer picture)",
    "iw": "--iw X (0 to 3: how strongly the attached pictures steer, default 1; needs a picture)",
    "sref": "--sref (no value: take only the style of the attached pictures; needs a picture)",
}
_ALIASES = {"aspect": "ar", "c": "chaos", "negative": "no", "guidance": "cfg", "r": "repeat"}
# Midjourney's options people paste by habit: accepted, never a failed job. --v and --niji pick a model
# through the operator's `version_models` table; the others have no counterpart here (the user is told).
HABIT_FLAGS = {"v": "v", "version": "v", "niji": "niji", "stylize": "stylize", "s": "stylize",
               "weird": "weird", "w": "weird", "style": "style", "q": "quality", "quality": "quality"}  # fmt: skip
MAX_HABIT_ARGUMENT = 20


@dataclass(frozen=True)
class ParsedPrompt:
    """What a prompt asks for; None means "use the model's or the user's default"."""

    text: str
    negative: str = ""
    aspect: tuple[int, int] | None = None
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    chaos: int | None = None
    tile: bool = False
    turbo: bool = False
    model: str | None = None
    adapters: tuple[AdapterRef, ...] = ()
    repeat: int | None = None  # run the prompt as that many jobs
    stop: int | None = None  # percent of the steps to run
    iw: float | None = None  # --iw: the image prompt's weight
    sref: bool = False  # --sref: the pictures are style references
    version: str | None = None  # Midjourney's --v 6.1 ("6.1") or --niji 6 ("niji 6"; "niji" alone)
    habits: tuple[str, ...] = ()  # Midjourney's flags without effect here, as typed ("--stylize 250")


def parse_prompt(raw: str, *, pictures: bool = False) -> ParsedPrompt:
    """Split `raw` into prompt text, token references and flag values; raise `PromptError` if malformed.
    With `pictures` (image prompts are attached: /blend) the text may be empty."""
    if len(raw) > MAX_PROMPT_CHARS:
        raise PromptError(f"the prompt is {len(raw)} characters long; the limit is {MAX_PROMPT_CHARS}")
    text, flags = _split_flags(_A1111_LORA_RE.sub(r"<\1>", raw))
    values = _parse_flag_values(flags)
    negative = values.pop("no", "")
    adapters = _collect_adapters(text, str(negative))
    text = _normalise_text(_TOKEN_REF_RE.sub(lambda m: f"<{m.group(1).split(':')[0]}>", text))
    if not text and not pictures:
        raise PromptError("the prompt is empty: describe what you want to see before any --flags")
    negative = _normalise_text(_TOKEN_REF_RE.sub(lambda m: f"<{m.group(1).split(':')[0]}>", str(negative)))
    negative_fragments(negative, weigh(text).avoided)  # weights that make no sense fail here, not in a job
    return ParsedPrompt(text=text, negative=negative, adapters=adapters, **values)  # type: ignore[arg-type]


def _split_flags(raw: str) -> tuple[str, list[tuple[str, str]]]:
    """The text before the first flag, and each (flag name, its argument text) in order."""
    matches = list(_FLAG_RE.finditer(raw))
    if not matches:
        return raw, []
    flags = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(raw)
        flags.append((match.group(1).lower(), raw[match.end() : end].strip()))
    return raw[: matches[0].start()], flags


def _parse_flag_values(flags: list[tuple[str, str]]) -> dict[str, object]:
    values: dict[str, object] = {}
    habits: list[str] = []
    for given_name, argument in flags:
        name = _ALIASES.get(given_name, given_name)
        if given_name in HABIT_FLAGS:
            shown = f"--{given_name} {argument[:MAX_HABIT_ARGUMENT]}".strip()
            kind = HABIT_FLAGS[given_name]
            if kind in ("v", "niji"):  # the first one counts (a pasted prompt rarely has both)
                number = argument.split()[0][:MAX_HABIT_ARGUMENT] if argument.split() else ""
                values.setdefault("version", f"niji {number}".strip() if kind == "niji" else number)
            else:
                habits.append(shown)
            continue
        if name not in FLAG_FORMS:
            known = ", ".join(f"--{flag}" for flag in FLAG_FORMS)
            shown = f"--{given_name}" if given_name else "--"
            raise PromptError(f"unknown flag {shown}; valid flags are {known}", flag=given_name)
        if name in values:
            raise PromptError(f"--{name} is given twice; use it once: {FLAG_FORMS[name]}", flag=name)
        values[name] = _FLAG_PARSERS[name](argument)
    if habits:
        values["habits"] = tuple(habits)
    return {("aspect" if k == "ar" else k): v for k, v in values.items()}


def _flag_error(name: str, argument: str) -> PromptError:
    shown = f"'{argument}'" if argument else "nothing"
    return PromptError(f"--{name} got {shown}; use {FLAG_FORMS[name]}", flag=name)


def _bounded_int(name: str, argument: str, low: int, high: int) -> int:
    if not _INT_RE.match(argument) or not low <= int(argument) <= high:
        raise _flag_error(name, argument)
    return int(argument)


def within_aspect(width: int, height: int) -> bool:
    """Whether a picture or ratio of `width` x `height` is between 1:MAX_ASPECT and MAX_ASPECT:1."""
    return width > 0 and height > 0 and max(width / height, height / width) <= MAX_ASPECT


def parse_aspect(argument: str) -> tuple[int, int]:
    parts = argument.split(":")
    if len(parts) != 2 or not all(_INT_RE.match(part) and len(part) <= 5 for part in parts):
        raise _flag_error("ar", argument)
    width, height = (int(part) for part in parts)
    if not within_aspect(width, height):
        raise _flag_error("ar", argument)
    divisor = math.gcd(width, height)
    return width // divisor, height // divisor


def _parse_cfg(argument: str) -> float:
    if not _FLOAT_RE.match(argument) or len(argument) > 10 or not 0.0 <= float(argument) <= 30.0:
        raise _flag_error("cfg", argument)
    return float(argument)


def _parse_negative(argument: str) -> str:
    if not argument:
        raise _flag_error("no", argument)
    return argument


def _parse_tile(argument: str) -> bool:
    return _no_value("tile", argument)


def _parse_turbo(argument: str) -> bool:
    return _no_value("turbo", argument)


def _no_value(name: str, argument: str) -> bool:
    if argument:
        raise PromptError(
            f"--{name} takes no value but was followed by '{argument}'; put --{name} after the prompt text",
            flag=name,
        )
    return True


def _parse_image_weight(argument: str) -> float:
    if not _FLOAT_RE.match(argument) or len(argument) > 10 or not 0.0 <= float(argument) <= 3.0:
        raise _flag_error("iw", argument)
    return float(argument)


def _parse_model(argument: str) -> str:
    if not _MODEL_NAME_RE.match(argument):
        raise _flag_error("model", argument)
    return argument


_FLAG_PARSERS: dict[str, Callable[[str], object]] = {
    "ar": parse_aspect,
    "seed": lambda argument: _bounded_int("seed", argument, 0, MAX_SEED),
    "no": _parse_negative,
    "steps": lambda argument: _bounded_int("steps", argument, 1, 150),
    "cfg": _parse_cfg,
    "chaos": lambda argument: _bounded_int("chaos", argument, 0, 100),
    "tile": _parse_tile,
    "turbo": _parse_turbo,
    "model": _parse_model,
    "repeat": lambda argument: _bounded_int("repeat", argument, 2, 4),
    "stop": lambda argument: _bounded_int("stop", argument, 10, 100),
    "iw": lambda argument: _parse_image_weight(argument),
    "sref": lambda argument: _no_value("sref", argument),
}

MAX_OPTION_SETS = 25  # named option sets one user may keep (/prefer option set)
_OPTION_NAME_RE = re.compile(r"^[a-z0-9_-]{1,20}$")


def check_option_name(name: str) -> str:
    """A name for `/prefer option set` that no flag of the language already means."""
    lowered = name.lower()
    if not _OPTION_NAME_RE.match(lowered):
        raise PromptError(
            "an option set's name is 1-20 letters, digits, - or _ (then write --name in a prompt)"
        )
    if lowered in FLAG_FORMS or lowered in _ALIASES or lowered in HABIT_FLAGS:
        raise PromptError(f"--{lowered} is already a flag; choose another name")
    return lowered


def check_preference(value: str, what: str) -> str:
    """A suffix or an option set's value: flags (and words), checked by the prompt parser now."""
    text = " ".join(value.split())
    if not text:
        raise PromptError(f"the {what} is empty")
    parse_prompt(f"preference {text}")  # a bad flag is told now, not at every /imagine
    return text


def apply_preferences(raw: str, suffix: str = "", options: dict[str, str] | None = None) -> str:
    """A prompt with the user's option sets written out (`--mine` → its flags) and their suffix added,
    as Midjourney's /prefer does; flags the prompt gives itself come first and so win over the suffix."""
    text = raw
    for name, value in (options or {}).items():
        written = value.replace("\\", "\\\\")  # literally, not as a replacement template
        text = re.sub(rf"(?:^|(?<=\s))(?:--|—){re.escape(name)}(?=\s|$)", written, text)
    if not suffix:
        return text
    given = {name for name, _ in _split_flags(text)[1]}
    kept = [f"--{name} {argument}".strip() for name, argument in _split_flags(f"x {suffix}")[1]
            if _ALIASES.get(name, name) not in {_ALIASES.get(g, g) for g in given}]  # fmt: skip
    words = _split_flags(f"x {suffix}")[0][2:]
    body, _flags = _split_flags(text)
    return " ".join(part for part in (body.strip(), words.strip(), text[len(body) :].strip(), *kept) if part)


MAX_PERMUTATIONS = 16  # jobs one prompt may become with {…} and --repeat (over 4, the user confirms)
_ESCAPED = {"\\{": "\x00", "\\}": "\x01"}  # \{ and \} are literal braces


def expand_permutations(raw: str) -> list[str]:
    """Midjourney's permutations: `a {red, blue} bird --ar {1:1, 2:1}` is four prompts, every group
    multiplying the others (left to right). `\\{` and `\\}` are literal braces; groups do not nest."""
    text = raw
    for escaped, placeholder in _ESCAPED.items():
        text = text.replace(escaped, placeholder)
    prompts = [""]
    rest = text
    while (start := rest.find("{")) != -1 or "}" in rest:
        end = rest.find("}")
        if end == -1:
            raise PromptError("a `{` is not closed: write choices as {red, blue} (\\{ for a brace itself)")
        if start == -1 or end < start:
            raise PromptError("a `}` closes no `{`: write choices as {red, blue} (\\} for a brace itself)")
        inner = rest[start + 1 : end]
        if "{" in inner:
            raise PromptError("{…} choices cannot be nested: write {red, blue} {bird, fish}")
        choices = [choice.strip() for choice in inner.split(",")]
        prompts = [f"{before}{rest[:start]}{choice}" for before in prompts for choice in choices]
        if len(prompts) > MAX_PERMUTATIONS:
            raise PromptError(f"that is more than {MAX_PERMUTATIONS} prompts; use fewer {{…}} choices")
        rest = rest[end + 1 :]
    restored = [f"{prompt}{rest}" for prompt in prompts]
    for escaped, placeholder in _ESCAPED.items():
        restored = [prompt.replace(placeholder, escaped[1]) for prompt in restored]
    return restored


def _collect_adapters(*texts: str) -> tuple[AdapterRef, ...]:
    """Every `<name>` / `<name:weight>` in order of first use; one name cannot carry two weights."""
    found: dict[str, AdapterRef] = {}
    for text in texts:
        for match in _TOKEN_REF_RE.finditer(text):
            ref = _parse_token_ref(match.group(0), match.group(1))
            if ref.name in found and found[ref.name].weight != ref.weight:
                raise PromptError(
                    f"<{ref.name}> is given two weights ({found[ref.name].weight:g} and {ref.weight:g}); "
                    "use one"
                )
            found.setdefault(ref.name, ref)
    return tuple(found.values())


def _parse_token_ref(whole: str, inner: str) -> AdapterRef:
    name, _, weight_text = inner.partition(":")
    if not _TOKEN_NAME_RE.match(name):
        raise PromptError(
            f"{whole} is not a valid token reference: names are 2-32 letters, digits, - or _ "
            "(e.g. <my-dog> or <my-dog:0.8>)"
        )
    if not weight_text:
        if inner.endswith(":"):
            raise PromptError(f"{whole} has no weight after ':'; write <{name}> or <{name}:0.8>")
        return AdapterRef(name=name)
    if not _WEIGHT_RE.match(weight_text) or len(weight_text) > 8 or not -2 <= float(weight_text) <= 2:
        raise PromptError(f"{whole} has a bad weight; use a number from -2 to 2, e.g. <{name}:0.8>")
    return AdapterRef(name=name, weight=float(weight_text))


def _normalise_text(text: str) -> str:
    return " ".join(text.split()).strip(" ,")


DEFAULTABLE = ("negative", "aspect", "steps", "cfg", "chaos", "model")  # what /settings may preset


def parse_defaults(flags: str) -> ParsedPrompt:
    """A user's saved defaults, written as prompt flags ("--ar 3:2 --steps 30"), checked by the same
    parser as prompts; seeds, tiling and tokens are per prompt, never defaults."""
    parsed = parse_prompt(f"defaults {flags}")
    if (
        parsed.seed is not None
        or parsed.tile
        or parsed.turbo
        or parsed.adapters
        or parsed.repeat is not None
        or parsed.iw is not None
        or parsed.sref
        or parsed.habits
        or parsed.version is not None
    ):
        raise PromptError(
            "defaults may set --ar, --steps, --cfg, --chaos, --no and --model "
            "(not --seed, --tile, --turbo, --repeat, <tokens> or Midjourney's --v, --stylize and the like)"
        )
    return parsed


def with_defaults(parsed: ParsedPrompt, defaults: ParsedPrompt) -> ParsedPrompt:
    """`parsed` with every value it leaves open taken from `defaults`."""
    changes = {
        name: getattr(defaults, name)
        for name in DEFAULTABLE
        if getattr(parsed, name) in (None, "") and getattr(defaults, name) not in (None, "")
    }  # unset is None, or "" for the negative prompt; an explicit --chaos 0 stays 0
    return replace(parsed, **changes)


def format_defaults(parsed: ParsedPrompt) -> str:
    """The defaults of `parsed` written back as flags, in a fixed order ("" when there are none)."""
    parts = []
    if parsed.aspect is not None:
        parts.append(f"--ar {parsed.aspect[0]}:{parsed.aspect[1]}")
    if parsed.steps is not None:
        parts.append(f"--steps {parsed.steps}")
    if parsed.cfg is not None:
        parts.append(f"--cfg {parsed.cfg:g}")
    if parsed.chaos is not None:
        parts.append(f"--chaos {parsed.chaos}")
    if parsed.model is not None:
        parts.append(f"--model {parsed.model}")
    if parsed.negative:
        parts.append(f"--no {parsed.negative}")  # last: --no takes the rest of the text
    return " ".join(parts)
