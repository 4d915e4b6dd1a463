"""Every job kind is complete: one spec class in the JobSpec union, with a run function in the
runner's table and the answers the job service and the bot ask of any spec. This is what keeps
"adding a kind" to a spec module, a run function + table row, and a cog (CONTRIBUTING.md)."""

from __future__ import annotations

from typing import get_args

from generation.pool.runner import RUNS
from generation.specs import JobSpec, spec_from_json

SPEC_CLASSES = get_args(get_args(JobSpec)[0])


def test_every_kind_has_one_spec_class_and_a_run_function() -> None:
    kinds = [cls.model_fields["kind"].default for cls in SPEC_CLASSES]
    assert len(kinds) == len(set(kinds)), kinds
    assert set(RUNS) == set(SPEC_CLASSES)


def test_specs_round_trip_through_json_by_kind(tiny_config: object) -> None:
    from generation.prompt import parse_prompt
    from generation.specs import imagine_spec

    spec = imagine_spec(parse_prompt("a red circle --seed 4"), tiny_config, 64)  # type: ignore[arg-type]
    assert spec_from_json(spec.to_json()) == spec
    assert spec.title() == "a red circle" and spec.files() == ()
