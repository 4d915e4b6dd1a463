"""What is known about each model family without loading it (no torch): its names, the diffusers
pipeline classes that mark it in a checkpoint's model_index.json, and the operations dreamcord can
run on it. The bot reads these to size and refuse jobs; generation.models.families holds the code
that differs per family."""

from __future__ import annotations

from dataclasses import dataclass

# What a job may ask of a model, as the refusals name them.
OPERATION_WORDS = {
    "imagine": "text to image",
    "vary": "variations",
    "region": "Vary (Region)",
    "outpaint": "zoom, pan and make square",
    "upscale": "upscaling",
    "control": "ControlNet",
    "train": "training personal tokens",
    "lora": "LoRAs",
    "embedding": "textual-inversion embeddings",
    "negative": "negative prompts (--no)",
    "tile": "seamless tiling (--tile)",
    "image_prompt": "image prompts (/blend, pictures on /imagine, --iw, --sref)",
    "describe": "/describe",
}


@dataclass(frozen=True)
class FamilyFacts:
    name: str  # as a config's `family` key says it
    label: str  # as people call it
    pipeline_classes: tuple[str, ...]  # model_index.json `_class_name`s of its checkpoints
    operations: frozenset[str]  # keys of OPERATION_WORDS
    native_side: int = 0  # its models' image side when a checkpoint's configs do not say (0: they do)

    def supports(self, operation: str) -> bool:
        return operation in self.operations

    def refusal(self, operation: str, model: str) -> str:
        """One line for a job this family cannot run."""
        return f"model {model!r} ({self.label}) cannot do {OPERATION_WORDS[operation]} yet"


SD1 = FamilyFacts(
    name="sd1",
    label="SD 1.x/2.x",
    pipeline_classes=("StableDiffusionPipeline",),
    operations=frozenset(OPERATION_WORDS),
)
SDXL = FamilyFacts(
    name="sdxl",
    label="SDXL",
    pipeline_classes=("StableDiffusionXLPipeline",),
    operations=frozenset(OPERATION_WORDS),
)
FLUX = FamilyFacts(
    name="flux",
    label="Flux",
    pipeline_classes=("FluxPipeline",),
    native_side=1024,  # the transformer has no sample size; FluxPipeline's default is 1024
    # A transformer with guidance distilled in: no negative prompt, no convolutions to tile; ControlNet,
    # embeddings and training need their Flux forms (not yet).
    operations=frozenset({"imagine", "vary", "region", "outpaint", "upscale", "lora", "describe"}),
)
FAMILIES = {family.name: family for family in (SD1, SDXL, FLUX)}


def family_named(name: str) -> FamilyFacts:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


def family_of_pipeline_class(class_name: str) -> FamilyFacts | None:
    """The family a checkpoint's pipeline class marks, or None for one dreamcord does not run."""
    return next((f for f in FAMILIES.values() if class_name in f.pipeline_classes), None)
