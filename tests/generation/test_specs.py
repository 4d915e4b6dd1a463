from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation.errors import SpecError
from generation.specs import MAX_SEED, SCHEDULER_NAMES, AdapterRef, ImagineSpec, build_spec, spec_from_json

_names = st.from_regex(r"[A-Za-z0-9_-]{2,32}", fullmatch=True)
_adapters = st.builds(AdapterRef, name=_names, weight=st.floats(-2, 2, allow_nan=False))
imagine_specs = st.builds(
    ImagineSpec,
    model=st.text(min_size=1, max_size=64),
    prompt=st.text(min_size=1, max_size=200).filter(str.strip),
    negative_prompt=st.text(max_size=100),
    seeds=st.lists(st.integers(0, MAX_SEED), min_size=1, max_size=8).map(tuple),
    width=st.integers(4, 256).map(lambda n: n * 8),
    height=st.integers(4, 256).map(lambda n: n * 8),
    steps=st.integers(1, 150),
    guidance=st.floats(0, 30, allow_nan=False),
    scheduler=st.sampled_from(SCHEDULER_NAMES),
    chaos=st.integers(0, 100),
    tile=st.booleans(),
    adapters=st.lists(_adapters, max_size=4).map(tuple),
)


@given(imagine_specs)
def test_spec_survives_json_round_trip(spec: ImagineSpec) -> None:
    assert spec_from_json(spec.to_json()) == spec


def _spec(**changes: object) -> ImagineSpec:
    fields: dict[str, object] = dict(
        model="tiny", prompt="a cat", seeds=(1, 2, 3, 4), width=64, height=64, steps=4, guidance=7.0
    )
    fields.update(changes)
    return build_spec(ImagineSpec, **fields)


def test_single_keeps_everything_but_the_seed() -> None:
    spec = _spec(chaos=30, tile=True)
    single = spec.single(2)
    assert single.seeds == (3,)
    assert single.model_copy(update={"seeds": spec.seeds}) == spec


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt is empty"),
        ({"width": 63}, "width: Input should be a multiple of 8 (got 63)"),
        ({"width": 100_000}, "width"),
        ({"height": 8}, "height"),
        ({"steps": -1}, "steps"),
        ({"guidance": float("nan")}, "guidance"),
        ({"scheduler": "plms"}, "scheduler"),
        ({"seeds": ()}, "seeds"),
        ({"seeds": (-1,)}, "seeds.0"),
        ({"chaos": 101}, "chaos"),
        ({"adapters": ({"name": "x"},)}, "adapters.0.name"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_values_raise_one_readable_spec_error(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        _spec(**changes)


def test_spec_is_immutable() -> None:
    spec = _spec()
    with pytest.raises(Exception, match="frozen"):
        spec.steps = 5  # type: ignore[misc]


def test_spec_from_json_rejects_unknown_kind() -> None:
    with pytest.raises(SpecError, match="kind"):
        spec_from_json('{"kind": "dance"}')


def test_single_rejects_out_of_range_index() -> None:
    with pytest.raises(SpecError, match=r"0\.\.3"):
        _spec().single(4)


def test_a_describe_spec_names_its_picture_and_refuses_a_bad_hash() -> None:
    from generation.specs import DescribeSpec, build_spec, spec_from_json

    spec = build_spec(DescribeSpec, model="bundled", source="ab" * 32)
    assert spec_from_json(spec.to_json()) == spec and spec.files() == ("ab" * 32,)
    assert spec.title() == "describing a picture" and spec.library_name() is None
    with pytest.raises(SpecError, match="source"):
        build_spec(DescribeSpec, model="bundled", source="not-a-hash")
