"""How much of a picture prompt the bundled model's image path can carry at best: an IP-Adapter whose
image tokens are the picture's own caption states (the text encoder's 77, start and padding
included) and whose `to_k_ip`/`to_v_ip` are copies of the text's `to_k`/`to_v`, so the image path
attends as the text path does for that caption. The test's loop otherwise (issue 20: a one-shape
picture, the text "a shape", seeds 2000+i, the model's evaluator). What an adapter that predicts
those states (`train_ip_adapter --projection plus`) can approach (bench/RESULTS.md, "Session 22").

    python bench/bench_caption_state_oracle.py --model generation/bundled/model \
        --evaluator generation/bundled/evaluator --pictures 40 --scales 0.5 1 2
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import torch
from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

from generation.bundled import BUNDLED_MODEL_DIR, evaluator
from generation.bundled.caption_state_regression import caption_states
from generation.bundled.dataset import sample_scene
from generation.models.image_prompts import cross_attentions, fresh_adapter_state


def oracle_pipeline(model: Path) -> Any:
    """The model with a fresh adapter (its layers are the text's copies: fresh_adapter_state) whose
    projection is the identity: the image tokens given to it are used as they are."""
    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, dtype=torch.float32)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)  # the bundled default
    state = fresh_adapter_state(pipe.unet, pipe.unet.config.cross_attention_dim, 4, seed=0)
    pipe.load_ip_adapter(state, subfolder=None, weight_name=None, image_encoder_folder=None)
    for attention in cross_attentions(pipe.unet):
        attention.processor.num_tokens = [pipe.tokenizer.model_max_length]
    pipe.unet.encoder_hid_proj.image_projection_layers[0] = torch.nn.Identity()
    return pipe


def measure(pipe: Any, judge: evaluator.SceneClassifier, pictures: int, scale: float) -> tuple[int, int, int]:
    """(colour, shape, both) right out of `pictures`."""
    pipe.set_ip_adapter_scale(scale)
    empty = caption_states(pipe, [""])
    rng = random.Random(21)  # the test's pictures
    colour = shape = both = 0
    for index in range(pictures):
        scene = sample_scene(rng, max_shapes=1)
        truth = scene.shapes[0]
        tokens = torch.stack([empty, caption_states(pipe, [scene.caption()])])  # unguided, guided
        image = pipe("a shape", ip_adapter_image_embeds=[tokens], num_inference_steps=20, guidance_scale=5.0,
                     generator=torch.Generator().manual_seed(2000 + index)).images[0]  # fmt: skip
        verdict = evaluator.classify(judge, [image])[0]
        colour += verdict.colour == truth.colour
        shape += verdict.shape == truth.shape
        both += verdict.colour == truth.colour and verdict.shape == truth.shape
    return colour, shape, both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL_DIR)
    parser.add_argument(
        "--evaluator", type=Path, help="the model's evaluator folder (default: the shipped one)"
    )
    parser.add_argument("--pictures", type=int, default=40)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    args = parser.parse_args()
    torch.set_num_threads(2)
    pipe = oracle_pipeline(args.model)
    judge = evaluator.load(args.evaluator) if args.evaluator else evaluator.load()
    print(f"{args.pictures} pictures, text 'a shape', image tokens = the caption's own states")
    for scale in args.scales:
        colour, shape, both = measure(pipe, judge, args.pictures, scale)
        print(f"scale {scale:g}: colour {colour}  shape {shape}  both {both}", flush=True)


if __name__ == "__main__":
    main()
