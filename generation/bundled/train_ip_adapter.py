"""Train the bundled model's image-prompt adapter, in IP-Adapter's own format, on the CPU.

    python -m generation.bundled.train_ip_adapter --out generation/bundled/ip_adapter
    python -m generation.bundled.train_ip_adapter --model generation/bundled/model --out OUT
    python -m generation.bundled.train_ip_adapter --model ... --out OUT --resume   # after an interruption

What is trained (the bundled model itself stays frozen):
- an image encoder: a small `CLIPVisionModelWithProjection` (64 px whatever the model's size, patches
  of 4; the pipeline's CLIPImageProcessor resizes to it), from scratch, since no pretrained one can be
  downloaded here, to read the scene's attributes (linear heads on its embedding: shape, colour, size,
  place; stage 1, without the UNet); then frozen; saved with `save_pretrained` as `image_encoder/`;
- the adapter: an image projection and a `to_k_ip`/`to_v_ip` pair per cross-attention layer,
  initialised from the text's `to_k`/`to_v` as the IP-Adapter paper does; saved as
  `ip-adapter.safetensors` with the keys `image_proj.*` and `ip_adapter.N.*` that diffusers'
  `load_ip_adapter` reads (N = 1, 3, 5, … over the UNet's cross-attention layers). The projection is
  IP-Adapter's (the pooled embedding -> 4 tokens, fitted first to the caption's token states:
  image_token_alignment.py), IP-Adapter Full's (one token per encoder patch, from the penultimate
  layer's 257 hidden states) or IP-Adapter Plus's (a resampler's 77 queries read those hidden states;
  regressed first onto the caption's own states: caption_state_regression.py): `--projection`.
  The encoder's stages and the projection's fitting (the head start) are ip_adapter_head_start.py's.

The picture prompt of each example is its own target scene (IP-Adapter's recipe); its caption is
mostly withheld ("a shape" or nothing) so that colour and shape must come through the picture, and
10% of image encodings are replaced by what the pipeline feeds the unconditional CFG pass.
Besides the noise, the adapter learns the UNet's own text-only prediction for the picture's caption
(`--distill`): a target with the caption's uncertainty averaged out.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline
from safetensors.torch import load_file, save_file
from tqdm import tqdm
from transformers import CLIPVisionModelWithProjection

from generation.bundled import (
    BUNDLED_IP_ADAPTER_DIR,
    BUNDLED_IP_ADAPTER_FILE,
    BUNDLED_MODEL_DIR,
    scene_variety,
)
from generation.bundled.dataset import GENERIC_CAPTIONS, sample_scene
from generation.bundled.image_encoder import (
    build_image_encoder,
    encode_pictures,
    unconditional_encoding,
)
from generation.bundled.ip_adapter_head_start import HeadStart
from generation.bundled.objectives import noise_prediction_loss, weighted_mse
from generation.bundled.training_checkpoints import load_tensors
from generation.bundled.training_data import as_model_input, render_pictures, subject_weights
from generation.models.image_prompts import (
    PROJECTION_KINDS,
    ProjectionKind,
    fresh_adapter_state,
    loaded_adapter_state,
    projection_kind,
)

log = logging.getLogger(__name__)

TOKENS = 4  # image tokens per picture: what diffusers assumes for an `image_proj.proj` adapter
CHECKPOINT_DIR = "checkpoint"  # inside --out, while a run is unfinished
DEFAULT_HEAD_START = HeadStart()  # frozen: one shared default is safe


@torch.no_grad()
def caption_teacher(
    pipe: Any, noisy: torch.Tensor, timesteps: torch.Tensor, hidden: torch.Tensor, image_embeds: torch.Tensor
) -> torch.Tensor:
    """The UNet's prediction from text alone, its adapter switched off for the call (scale 0, which
    diffusers' IP-Adapter processors skip, so `image_embeds` (batch, 1, …) only need the right shape)
    and on again at 1, the scale the adapter trains at."""
    pipe.set_ip_adapter_scale(0.0)
    try:
        prediction: torch.Tensor = pipe.unet(
            noisy, timesteps, encoder_hidden_states=hidden, added_cond_kwargs={"image_embeds": [image_embeds]}
        ).sample
    finally:
        pipe.set_ip_adapter_scale(1.0)
    return prediction


def train(
    steps: int,
    batch: int,
    scenes: int,
    lr: float,
    seed: int,
    out: Path,
    init: Path | None = None,
    model: Path = BUNDLED_MODEL_DIR,
    *,
    head_start: HeadStart = DEFAULT_HEAD_START,
    save_every: int = 250,
    distill: float = 1.0,
    projection: ProjectionKind = "pooled",
    projection_only: bool = False,
    resampler_width: int | None = None,
    subject_weight: float = 0.0,
    cosine_decay: bool = False,
    resume: bool = False,
    device: str = "cpu",
) -> None:
    """`init`: an adapter folder this script wrote, to train further (a session's time is limited);
    its encoder and projection are kept as they are (no stage 1, no fitting).
    `model`: the bundled model folder the adapter is for (its own scenes are drawn). Every
    `save_every` steps the adapter, encoder and optimizer go to `out/checkpoint`, which
    `resume` continues (the head start is not repeated) and a finished run removes.
    `head_start`: what comes before the diffusion steps (ip_adapter_head_start.HeadStart).
    `projection`: the adapter's kind (image_prompts.PROJECTION_KINDS); an `init` adapter of another kind
    gives its encoder only (the layers and projection start fresh and are fitted).
    `projection_only`: the layers' to_k_ip/to_v_ip stay as they are (fresh: the text's copies).
    `resampler_width`: a fresh plus resampler's inner width (default: the UNet's cross-attention width).
    `subject_weight`: the loss on the latent cells the shapes cover weighs 1 + this, the background's 1
    (training_data.subject_weights). `cosine_decay`: the rate falls along a half cosine to 0 at `steps`.
    Batches are drawn on the CPU whatever `device` trains."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, dtype=torch.float32)
    for part in (pipe.unet, pipe.vae, pipe.text_encoder):
        part.requires_grad_(False)
    embed_dim = pipe.unet.config.cross_attention_dim
    checkpoint = out / CHECKPOINT_DIR
    if resume and not (checkpoint / "state.json").is_file():
        raise FileNotFoundError(f"no checkpoint to resume in {checkpoint}")
    start = json.loads((checkpoint / "state.json").read_text())["step"] if resume else 0
    source = checkpoint if resume else init
    patches = projection != "pooled"
    state: Any = None
    if source is None:
        encoder = build_image_encoder(embed_dim)
    else:
        encoder = CLIPVisionModelWithProjection.from_pretrained(source / "image_encoder")
        flat = load_file(source / BUNDLED_IP_ADAPTER_FILE)
        state = {part: {k.partition(".")[2]: v for k, v in flat.items() if k.startswith(f"{part}.")}
                 for part in ("image_proj", "ip_adapter")}  # fmt: skip
    fresh = state is None or projection_kind(state["image_proj"]) != projection
    if resume and fresh:
        raise ValueError(
            f"the checkpoint in {checkpoint} is not a {projection} adapter: pass its --projection"
        )
    refusal = head_start.refusal(fresh=fresh, resume=resume, init=init is not None, projection=projection)
    if resampler_width and not (fresh and projection == "plus"):
        kept = state["image_proj"].get("latents") if resume else None  # a resumed run's own resampler
        if kept is None or kept.shape[-1] != resampler_width:
            refusal = (
                "--resampler-width sizes a fresh plus adapter's resampler (--projection plus, no plus --init)"
            )
    if refusal:
        raise ValueError(refusal)
    if fresh:  # a new adapter (from an adapter of another kind: on its encoder)
        width = encoder.config.hidden_size if patches else embed_dim
        tokens = pipe.tokenizer.model_max_length if projection == "plus" else TOKENS
        state = fresh_adapter_state(
            pipe.unet, width, tokens, seed, kind=projection, resampler_width=resampler_width
        )
    pipe.load_ip_adapter(state, subfolder=None, weight_name=None, image_encoder_folder=None)
    adapter = [
        p
        for n, p in pipe.unet.named_parameters()
        if "encoder_hid_proj" in n or ("_ip." in n and not projection_only)
    ]
    for parameter in adapter:
        parameter.requires_grad_(True)

    variety = scene_variety(model)
    drawn = [sample_scene(rng, max_shapes=2, variety=variety) for _ in range(scenes)]
    side = pipe.vae.config.sample_size  # the model's native size
    images = as_model_input(render_pictures(drawn, side))
    pipe.to(device)
    encoder.to(device)  # type: ignore[arg-type]  # transformers types .to() as its decorator wrapper
    generator = torch.Generator().manual_seed(seed + 1 + start)  # a resumed run draws fresh batches
    regressing = head_start.regresses(fresh=fresh, resume=resume, projection=projection)
    head_start.train_encoder(
        pipe, encoder, new_encoder=source is None, regressing=regressing, variety=variety, seed=seed,
        generator=generator,
    )  # fmt: skip
    # From here the encoder stays as it is, so the projection fitted to it stays valid (and a step costs
    # 0.6x of one that trains it too): its embeddings, once.
    encoder.requires_grad_(False)
    embeddings = encode_pictures(encoder, images, patches=patches)
    unguided = unconditional_encoding(encoder, patches=patches)[0]
    optimizer = torch.optim.AdamW(adapter, lr=lr, weight_decay=1e-2)
    if resume:
        optimizer.load_state_dict(load_tensors(checkpoint / "optimizer.pt"))
    else:
        head_start.fit_projection(
            pipe, embeddings, unguided, drawn, fresh=fresh, regressing=regressing, projection=projection,
            generator=generator,
        )  # fmt: skip
        _save_checkpoint(checkpoint, pipe.unet, encoder, optimizer, 0)  # a resume skips stage 1
    with torch.no_grad():
        scale = pipe.vae.config.scaling_factor
        chunks = torch.split(images, 256)
        latents = torch.cat([pipe.vae.encode(c.to(device)).latent_dist.mean.cpu() for c in chunks]) * scale
    captions = [scene.caption() for scene in drawn]
    cells = subject_weights(drawn, latents.shape[-1], subject_weight) if subject_weight else None
    texts: dict[str, torch.Tensor] = {}

    def text_embedding(caption: str) -> torch.Tensor:
        if caption not in texts:
            ids = pipe.tokenizer(
                caption, padding="max_length", truncation=True, return_tensors="pt"
            ).input_ids
            with torch.no_grad():
                texts[caption] = pipe.text_encoder(ids.to(device))[0][0]
        return texts[caption]

    # The rate along a half cosine from `lr` at step 0 to 0 at the last (a resumed run where it left off).
    decay = (lambda step: 0.5 * (1 + math.cos(math.pi * (start + step) / steps))) if cosine_decay else None
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, decay or (lambda step: 1.0))
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # the model's own prediction type
    started = time.perf_counter()
    progress = tqdm(range(start, steps), desc="ip-adapter", initial=start, total=steps)
    for step in progress:
        index = torch.randint(len(images), (batch,), generator=generator)
        chosen = [
            captions[i] if rng.random() < 0.25 else rng.choice(GENERIC_CAPTIONS) for i in index.tolist()
        ]
        hidden = torch.stack([text_embedding(caption) for caption in chosen])
        keep = torch.rand(batch, generator=generator) > 0.1  # 10%: what the CFG pass is given
        shaped = keep.view(-1, *[1] * unguided.dim())
        embeds = torch.where(shaped, embeddings[index], unguided)[:, None].to(device)  # (batch, 1 picture, …)
        clean = latents[index]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(noise_scheduler.config.num_train_timesteps, (batch,), generator=generator)
        clean, noise, timesteps = (t.to(device) for t in (clean, noise, timesteps))
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        prediction = pipe.unet(
            noisy,
            timesteps,
            encoder_hidden_states=hidden,
            added_cond_kwargs={"image_embeds": [embeds]},
        ).sample
        weights = None if cells is None else cells[index].to(device)
        loss = noise_prediction_loss(prediction, clean, noise, timesteps, noise_scheduler, 5.0, weights)
        if distill:
            # What the model predicts from the picture's own caption, without the adapter: a target
            # with the caption's uncertainty already averaged out (the noise target keeps it).
            told = [
                captions[i] if kept else text
                for i, kept, text in zip(index.tolist(), keep.tolist(), chosen, strict=True)
            ]
            hidden_told = torch.stack([text_embedding(caption) for caption in told])
            teacher = caption_teacher(pipe, noisy, timesteps, hidden_told, embeds)
            loss = loss + distill * weighted_mse(prediction, teacher, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward carries no annotations
        optimizer.step()
        schedule.step()
        if step % 50 == 0:
            progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % save_every == 0 and step + 1 < steps:
            _save_checkpoint(checkpoint, pipe.unet, encoder, optimizer, step + 1)
    log.info("trained in %.0f s", time.perf_counter() - started)
    _save_adapter(out, pipe.unet, encoder)
    for leftover in (checkpoint, _partial(checkpoint)):
        shutil.rmtree(leftover, ignore_errors=True)


def _partial(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".partial")


def _save_adapter(folder: Path, unet: Any, encoder: CLIPVisionModelWithProjection) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {name: weight.cpu() for name, weight in loaded_adapter_state(unet).items()},
        folder / BUNDLED_IP_ADAPTER_FILE,
    )
    encoder.save_pretrained(folder / "image_encoder")


def _save_checkpoint(
    folder: Path,
    unet: Any,
    encoder: CLIPVisionModelWithProjection,
    optimizer: torch.optim.Optimizer,
    step: int,
) -> None:
    """Written beside, then swapped in: a save interrupted while writing leaves the last checkpoint whole."""
    partial = _partial(folder)
    shutil.rmtree(partial, ignore_errors=True)
    _save_adapter(partial, unet, encoder)
    torch.save(optimizer.state_dict(), partial / "optimizer.pt")
    (partial / "state.json").write_text(json.dumps({"step": step}))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=BUNDLED_IP_ADAPTER_DIR)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--encoder-steps", type=int, default=2000)
    parser.add_argument("--encoder-scenes", type=int, default=30000, help="one-shape scenes for stage 1")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--scenes", type=int, default=8000)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init", type=Path, help="an adapter folder this script wrote, to train further")
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL_DIR, help="the bundled model it is for")
    parser.add_argument(
        "--save-every", type=int, default=250, help="steps between checkpoints in OUT/checkpoint"
    )
    parser.add_argument(
        "--align-steps", type=int, default=1000, help="fitting the image tokens to the caption's (0: none)"
    )
    parser.add_argument(
        "--distill", type=float, default=1.0, help="weight of the caption teacher's loss (0: none)"
    )
    parser.add_argument(
        "--projection", choices=sorted(PROJECTION_KINDS), default="pooled",
        help="; ".join(f"{kind}: {what}" for kind, what in PROJECTION_KINDS.items()),
    )  # fmt: skip
    parser.add_argument(
        "--projection-only", action="store_true", help="train the projection alone, the layers as they are"
    )
    parser.add_argument(
        "--resampler-width",
        type=int,
        help="a fresh plus resampler's inner width (default: the UNet's cross-attention width)",
    )
    parser.add_argument(
        "--regress-encoder", action="store_true",
        help="plus: the head start's regression trains the image encoder too (on --encoder-scenes scenes)",
    )  # fmt: skip
    parser.add_argument(
        "--more-encoder-steps", type=int, default=0,
        help="stage 1 continued on the --init adapter's encoder (for an adapter of another kind)",
    )  # fmt: skip
    parser.add_argument(
        "--shape-contrast", type=float, default=0.0,
        help="plus: weight of the regression's term that keeps each picture's shape apart from the others",
    )  # fmt: skip
    parser.add_argument(
        "--subject-weight", type=float, default=0.0,
        help="the loss on the shapes' latent cells weighs 1 + this (the background's 1)",
    )  # fmt: skip
    parser.add_argument(
        "--cosine-decay", action="store_true", help="the rate falls along a half cosine to 0 at --steps"
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    parser.add_argument("--device", default="cpu", help="what it trains on: cpu, cuda, cuda:1 ...")
    args = parser.parse_args()
    if args.resume and args.init:
        parser.error("--resume continues OUT/checkpoint; --init starts from a finished adapter: pass one")
    if args.resume and not (args.out / CHECKPOINT_DIR / "state.json").is_file():
        parser.error(f"--resume: no checkpoint in {args.out / CHECKPOINT_DIR}")
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(args.threads)
    head_start = HeadStart(
        encoder_steps=args.encoder_steps, encoder_scenes=args.encoder_scenes, more_encoder_steps=args.more_encoder_steps,
        align_steps=args.align_steps, regress_encoder=args.regress_encoder, shape_contrast=args.shape_contrast,
    )  # fmt: skip
    train(
        args.steps, args.batch, args.scenes, args.lr, args.seed, args.out, args.init, model=args.model,
        head_start=head_start, save_every=args.save_every, distill=args.distill, projection=args.projection,
        projection_only=args.projection_only, resampler_width=args.resampler_width,
        subject_weight=args.subject_weight, cosine_decay=args.cosine_decay, resume=args.resume, device=args.device,
    )  # fmt: skip


if __name__ == "__main__":
    main()
