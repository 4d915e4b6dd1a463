"""Train the bundled model from scratch on procedural scenes, on the CPU (or `--device cuda`), in two stages.

    python -m generation.bundled.train --out generation/bundled/model        # the first model (V1)

The second design (issue 22; 5-9 hours on 2 cores, the UNet 0.8-1.7 s a step by machine; resumable):

    python -m generation.bundled.train --design v2 --variety 0.06 --vae-steps 1800 --vae-crop 64 \
        --vae-whole-steps 300 --unet-steps 12000 --lr-decay-start 7000 --noise-offset 0 --token-loss 0.1 \
        --plain-share 0.25 --checkpoint-every 250 --save-dtype float16 --work data/bt-v2 --out OUT [--resume]

1. VAE: an AutoencoderKL learns to reconstruct scenes at the design's size (MSE + a tiny KL term);
   its latent scale is then set so latents have unit variance, as SD's 0.18215 does.
2. UNet + text encoder: trained together on the frozen VAE's latents with 10% empty captions so
   classifier-free guidance works. The first design predicts noise on SD's schedule with min-SNR
   weighting; the second predicts v on that schedule rescaled to zero terminal SNR
   (architecture.Design.zero_terminal_snr), so the layout comes from the prompt, not the noise,
   and takes a share of each batch from plain scenes at the noisiest timesteps (`--plain-share`;
   training_data.py), on which where the caption puts a shape is learned at all.
   EMA weights are what gets saved.

On Linux, run the VAE stage under jemalloc that never returns memory (Debian's libjemalloc2:
`LD_PRELOAD=libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1`): its whole-picture
steps' activations pass glibc's 32 MB mmap ceiling and were faulted in afresh every step (6 s a step;
3.5-4 s under jemalloc). `--resume` the UNet stage under glibc: there that jemalloc grew to 23 GB.

Seeded and resumable: `--resume` continues from the last checkpoint in --work; `--init MODEL` from a
model folder this script saved (`--export` writes one midway), so a run outlives the machine it
started on when only that folder (about 20 MB in float16) is kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.training_utils import EMAModel
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from generation.bundled import architecture
from generation.bundled.dataset import background_only, without_background
from generation.bundled.objectives import TextAnchor, TokenIdentityHead, noise_prediction_loss
from generation.bundled.preview_map import write_preview_map
from generation.bundled.training_checkpoints import (
    init_work,
    load_tensors,
    resume_model,
    resume_optimizer,
    save_checkpoint,
)
from generation.bundled.training_data import (
    as_model_input,
    batch_indices,
    encode_dataset,
    render_scenes,
    set_latent_scale,
)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    seed: int = 0
    scenes: int = 20_000  # rendered once, then sampled with replacement
    vae_steps: int = 1_500
    vae_batch: int = 32
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    unet_steps: int = 10_000
    unet_batch: int = 32
    unet_lr: float = 5e-4
    warmup_steps: int = 200
    lr_decay_start: int = 0  # from here the rate falls linearly to 0 at unet_steps (0: stays constant)
    caption_dropout: float = 0.1
    # Share of captions said without their background phrase (dataset.without_background), so a
    # prompt naming none ("a red circle") still draws a background; 0: every caption names it (until
    # session 27, when such prompts gave a field of the shape's colour).
    background_drop: float = 0.0
    text_encoder_only: bool = False  # the UNet stays bit for bit; the text encoder alone learns
    # objectives.TextAnchor's weight: whole and empty captions, backgrounds alone and generic texts kept.
    text_anchor: float = 0.0
    noise_offset: float = 0.05  # helps flat backgrounds (very light/dark images)
    snr_gamma: float = 5.0
    # UNet timesteps drawn from [min_timestep, 1000): above 0, a diagnostic of the noisiest steps alone.
    min_timestep: int = 0
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    threads: int = 2
    design: str = "v1"  # generation.bundled.architecture.DESIGNS
    variety: float = 0.0  # dataset.sample_scene's: 0 draws the first model's scenes
    vae_crop: int = 0  # train the (fully convolutional) VAE on random crops this wide; 0: whole images
    # ...but its last steps on whole images: trained on crops alone, its group norms and mid-block
    # attention never saw a whole picture, and it drew a frame and shifted colours (21 dB).
    vae_whole_steps: int = 0
    # Weight of objectives.TokenIdentityHead's loss on the text encoder (0: none, the first model).
    token_loss: float = 0.0
    # Share of each UNet batch from plain scenes (training_data.py: one shape on white, its position
    # said), so positions are learned; 0: none (the first model). `plain_scenes` are rendered for it.
    plain_share: float = 0.0
    plain_scenes: int = 2_000
    # ...at the noisiest timesteps, where the layout is decided: from 500, positions had not come by
    # 750 steps of the continued run; from 800 they came within 500 (bench/RESULTS.md, session 15).
    plain_min_timestep: int = 800
    save_dtype: str = "float32"  # "float16" halves the shipped files (they load as float32 on the CPU)


def learning_rate_factor(config: TrainConfig, step: int, started: int = 0) -> float:
    """The UNet stage's learning rate at `step`, relative to unet_lr: a warmup from `started` (where
    this optimizer began: 0, or the step an --init continues), then constant or decaying."""
    warmup = min(1.0, (step - started + 1) / config.warmup_steps)
    if not config.lr_decay_start or step < config.lr_decay_start:
        return warmup
    return warmup * max(0.0, (config.unet_steps - step) / (config.unet_steps - config.lr_decay_start))


def render_dataset(config: TrainConfig) -> tuple[torch.Tensor, list[str]]:
    """The config's scenes (then its plain scenes, if batches take a share of them) and captions."""
    return render_scenes(
        seed=config.seed,
        count=config.scenes,
        plain=config.plain_scenes if config.plain_share else 0,
        variety=config.variety,
        side=architecture.DESIGNS[config.design].image_size,
    )


# ---------------------------------------------------------------- stage 1: the VAE
def train_vae(config: TrainConfig, images: torch.Tensor, work: Path, device: str = "cpu") -> AutoencoderKL:
    design = architecture.DESIGNS[config.design]
    vae, first_step = resume_model(work / "vae", AutoencoderKL) or (architecture.build_vae(design), 0)
    vae.to(device)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr)
    resume_optimizer(work / "vae", optimizer)
    generator = torch.Generator().manual_seed(config.seed + 1 + first_step)
    vae.train()
    for step in tqdm(
        range(first_step, config.vae_steps), desc="vae", initial=first_step, total=config.vae_steps
    ):
        index = torch.randint(len(images), (config.vae_batch,), generator=generator)
        batch = as_model_input(images[index]).to(device)
        if config.vae_crop and step < config.vae_steps - config.vae_whole_steps:
            # one offset per batch, on the latent grid so crops align with it
            cells = (batch.shape[-1] - config.vae_crop) // 8 + 1
            top, left = (8 * int(torch.randint(cells, (1,), generator=generator)) for _ in range(2))
            batch = batch[..., top : top + config.vae_crop, left : left + config.vae_crop]
        posterior = vae.encode(batch).latent_dist
        # diffusers draws the sample on the CPU generator, then moves it to the VAE's device
        reconstruction = vae.decode(posterior.sample(generator)).sample
        loss = F.mse_loss(reconstruction, batch) + config.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.vae_steps:
            save_checkpoint(work / "vae", {"vae": vae}, optimizer, step + 1, loss.item())
    vae.eval()
    set_latent_scale(vae, images)
    vae.save_pretrained(work / "vae" / "vae")  # with its latent scale, for --export
    return vae


# ---------------------------------------------------------------- stage 2: UNet + text encoder
def train_unet(
    config: TrainConfig,
    latents: tuple[torch.Tensor, torch.Tensor],
    captions: list[str],
    tokenizer: CLIPTokenizer,
    work: Path,
    device: str = "cpu",
) -> tuple[UNet2DConditionModel, CLIPTextModel]:
    """Batches, noise and timesteps are drawn on the CPU from one seeded generator whatever `device`
    the models train on, so a run draws the same batches on any machine."""
    design = architecture.DESIGNS[config.design]
    resumed = resume_model(work / "unet", UNet2DConditionModel)
    unet, first_step = resumed or (architecture.build_unet(design), 0)
    text_encoder = (
        CLIPTextModel.from_pretrained(work / "unet" / "text_encoder")
        if resumed
        else (architecture.build_text_encoder(tokenizer, design))
    )
    unet.to(device)
    text_encoder.to(device)  # type: ignore[arg-type]  # transformers types .to() as its decorator wrapper
    ema_unet = EMAModel(unet.parameters(), decay=config.ema_decay)
    ema_text = EMAModel(text_encoder.parameters(), decay=config.ema_decay)
    if resumed:
        ema_unet.load_state_dict(load_tensors(work / "unet" / "ema_unet.pt"))
        ema_text.load_state_dict(load_tensors(work / "unet" / "ema_text.pt"))
        ema_unet.to(device)
        ema_text.to(device)
    token_head = (
        TokenIdentityHead(architecture.TEXT_DIM, len(tokenizer), tokenizer.pad_token_id)
        if config.token_loss
        else None
    )
    if token_head is not None and (work / "unet" / "token_head.pt").is_file():  # not after --init: fresh
        token_head.load_state_dict(load_tensors(work / "unet" / "token_head.pt"))
    if token_head is not None:
        token_head.to(device)
    unet.requires_grad_(not config.text_encoder_only)
    parameters = [] if config.text_encoder_only else [*unet.parameters()]
    parameters += list(text_encoder.parameters())
    parameters += list(token_head.parameters()) if token_head is not None else []
    optimizer = torch.optim.AdamW(parameters, lr=config.unet_lr, weight_decay=1e-2)
    # A fresh optimizer (a start, or --init) warms up again from first_step; a resumed one goes on.
    started = 0 if resume_optimizer(work / "unet", optimizer) else first_step
    warmup = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(config, step + started, started)
    )
    for _ in range(first_step - started):
        warmup.step()
    noise_scheduler = DDPMScheduler.from_config(architecture.build_scheduler(design).config)
    anchor = TextAnchor(text_encoder, config.text_anchor, tokenizer) if config.text_anchor else None
    empty_ids = tokenizer(
        "", padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
    ).input_ids
    caption_ids, subject_ids, background_ids = (
        tokenizer(
            [say(caption) for caption in captions],
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        for say in (str, without_background, background_only)  # str: the caption as it is
    )
    means, stds = latents
    generator = torch.Generator().manual_seed(config.seed + 2 + first_step)
    unet.train()
    text_encoder.train()
    progress = tqdm(
        range(first_step, config.unet_steps), desc="unet", initial=first_step, total=config.unet_steps
    )
    for step in progress:
        index = batch_indices(
            full=config.scenes,
            plain=len(means) - config.scenes,
            batch=config.unet_batch,
            plain_share=config.plain_share,
            generator=generator,
        )
        clean = means[index] + stds[index] * torch.randn(means[index].shape, generator=generator)
        ids = caption_ids[index].clone()
        short = torch.zeros(len(ids), dtype=torch.bool)
        if config.background_drop:  # drawn only then: runs without it draw the batches they always did
            short = torch.rand(len(ids), generator=generator) < config.background_drop
            ids[short] = subject_ids[index[short]]
        dropped = torch.rand(len(ids), generator=generator) < config.caption_dropout
        ids[dropped] = empty_ids
        noise = torch.randn(clean.shape, generator=generator)
        noise += config.noise_offset * torch.randn((len(clean), clean.shape[1], 1, 1), generator=generator)
        timesteps = torch.randint(
            config.min_timestep,
            noise_scheduler.config.num_train_timesteps,
            (len(clean),),
            generator=generator,
        )
        plain = index >= config.scenes  # they teach the layout, which the noisiest steps decide
        timesteps[plain] = torch.randint(
            max(config.min_timestep, config.plain_min_timestep),
            noise_scheduler.config.num_train_timesteps,
            (int(plain.sum()),),
            generator=generator,
        )
        clean, noise, timesteps, ids = (t.to(device) for t in (clean, noise, timesteps, ids))
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        states = text_encoder(ids)[0]
        prediction = unet(noisy, timesteps, encoder_hidden_states=states).sample
        loss = noise_prediction_loss(prediction, clean, noise, timesteps, noise_scheduler, config.snr_gamma)
        if token_head is not None:
            loss = loss + config.token_loss * token_head(states, ids)
        if anchor is not None:
            whole = ~short.to(device)
            loss = loss + anchor(text_encoder, states[whole], ids[whole], background_ids[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward carries no annotations
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        warmup.step()
        ema_unet.step(unet.parameters())
        ema_text.step(text_encoder.parameters())
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.unet_steps:
            save_checkpoint(
                work / "unet", {"unet": unet, "text_encoder": text_encoder}, optimizer, step + 1, loss.item()
            )
            torch.save(ema_unet.state_dict(), work / "unet" / "ema_unet.pt")
            torch.save(ema_text.state_dict(), work / "unet" / "ema_text.pt")
            if token_head is not None:
                torch.save(token_head.state_dict(), work / "unet" / "token_head.pt")
    ema_unet.copy_to(unet.parameters())
    ema_text.copy_to(text_encoder.parameters())
    unet.eval()
    text_encoder.eval()  # type: ignore[no-untyped-call]  # transformers' Module subclass, unannotated
    return unet, text_encoder


# ---------------------------------------------------------------- output
def save_model(
    out: Path,
    vae: AutoencoderKL,
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    config: TrainConfig,
    unet_steps_done: int | None = None,
) -> None:
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=architecture.build_scheduler(architecture.DESIGNS[config.design]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    if config.save_dtype == "float16":
        pipeline.to(torch.float16)
    pipeline.save_pretrained(out, safe_serialization=True)
    write_preview_map(out, vae.float(), config.variety)  # fitted in float32, after the save
    settings = {**asdict(config), "unet_steps_done": unet_steps_done or config.unet_steps}
    (out / "training_config.json").write_text(json.dumps(settings, indent=2))


def export(config: TrainConfig, work: Path, out: Path) -> None:
    """The pipeline of the latest checkpoints in `work`, with their EMA weights, without training
    further: to judge a run midway (bench/bench_bundled.py --model OUT)."""
    vae = AutoencoderKL.from_pretrained(work / "vae" / "vae")
    if vae.config.scaling_factor == 0.18215:  # diffusers' default: saved before set_latent_scale ran
        images, _ = render_dataset(TrainConfig(**{**asdict(config), "scenes": 2048}))
        set_latent_scale(vae.eval(), images)
    unet = UNet2DConditionModel.from_pretrained(work / "unet" / "unet")
    text_encoder = CLIPTextModel.from_pretrained(work / "unet" / "text_encoder")
    for model, name in ((unet, "ema_unet.pt"), (text_encoder, "ema_text.pt")):
        ema = EMAModel(model.parameters())
        ema.load_state_dict(load_tensors(work / "unet" / name))
        ema.copy_to(model.parameters())
    step = json.loads((work / "unet" / "state.json").read_text())["step"]
    text_encoder.eval()  # type: ignore[no-untyped-call]  # transformers' Module subclass, unannotated
    save_model(out, vae.eval(), unet.eval(), text_encoder, architecture.build_tokenizer(), config, step)
    log.info("exported %s at step %d", out, step)


def main() -> None:
    parser = argparse.ArgumentParser(description="Train dreamcord's bundled model on procedural scenes.")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "model")
    parser.add_argument("--work", type=Path, default=Path("data/bundled-training"), help="checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --work")
    parser.add_argument("--export", action="store_true", help="save --work's latest checkpoint to --out")
    parser.add_argument(
        "--init", type=Path, help="continue training a model folder this script saved (--work must not exist)"
    )
    parser.add_argument("--device", default="cpu", help="what the models train on: cpu, cuda, cuda:1 ...")
    for name, default in asdict(TrainConfig()).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(default, bool):  # type=bool would read "False" as true
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    args = parser.parse_args()
    config = TrainConfig(**{name: getattr(args, name) for name in asdict(TrainConfig())})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    if args.export:
        export(config, args.work, args.out)
        return
    if not args.resume and args.work.exists():
        raise SystemExit(f"{args.work} exists: pass --resume to continue, or remove it to start over")
    if not 0 <= config.min_timestep < 1000:
        parser.error("--min-timestep must be in 0-999 (the schedule's 1,000 timesteps)")
    if not 0 <= config.lr_decay_start < config.unet_steps:
        parser.error("--lr-decay-start must be below --unet-steps (0: no decay)")
    if args.init:
        if args.resume:
            parser.error("--init starts a new --work folder; --resume continues one: pass one of them")
        if not (args.init / "training_config.json").is_file():
            parser.error(f"{args.init} is not a model folder this script saved (no training_config.json)")
        init_work(args.init, args.work, config.vae_steps)
    started = time.perf_counter()
    images, captions = render_dataset(config)
    tokenizer = architecture.build_tokenizer()
    vae = train_vae(config, images, args.work, args.device)
    latents = encode_dataset(vae, images)
    unet, text_encoder = train_unet(config, latents, captions, tokenizer, args.work, args.device)
    save_model(args.out, vae.cpu(), unet.cpu(), text_encoder.cpu(), tokenizer, config)
    log.info("saved %s after %.1f min", args.out, (time.perf_counter() - started) / 60)


if __name__ == "__main__":
    main()
