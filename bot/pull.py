"""`dreamcord pull`: download every hub model the config names (models, VAEs, ControlNets, upscalers,
Flux Fill transformers, the bases of Flux files) into the Hugging Face cache ($HF_HOME), with progress bars, so that the bot
starts without waiting on downloads. Only what loading reads is fetched: a pipeline through diffusers'
own `DiffusionPipeline.download` (safetensors, no single-file duplicates), a part through its files."""

from __future__ import annotations

from dataclasses import dataclass

from bot.settings import Settings, SettingsError
from generation.errors import DreamcordError

PART_FILES = ["*.json", "*.safetensors", "*.txt"]
FILL_FILES = ["model_index.json", "transformer/*.json", "transformer/*.safetensors"]
# The base of a Flux transformer file: everything but the transformer's weights (the file has them).
BASE_FILES = ["model_index.json", "transformer/config.json"] + [
    f"{part}/*" for part in ("scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "vae")
]


@dataclass(frozen=True)
class HubDownload:
    what: str  # "model sdxl", "vae of sdxl", …
    repo: str
    files: list[str] | None  # None: a whole pipeline, as diffusers loads it


def hub_downloads(settings: Settings) -> list[HubDownload]:
    wanted: list[HubDownload] = []
    for name, config in sorted(settings.models.items()):
        parts: list[tuple[str, str | None, list[str] | None]] = [
            (f"model {name}", config.source, None),
            (f"base of {name}", config.base, BASE_FILES),
            (f"vae of {name}", config.vae, PART_FILES),
            (f"upscaler of {name}", config.upscaler, None),
            (f"fill model of {name}", config.fill, FILL_FILES),
        ]
        parts += [
            (f"{mode} ControlNet of {name}", source, PART_FILES)
            for mode, source in config.controlnets.items()
        ]
        for what, source, files in parts:
            if not source or not _is_hub_id(source):
                continue
            same = next((index for index, d in enumerate(wanted) if d.repo == source), None)
            if same is None:
                wanted.append(HubDownload(what, source, files))
            elif files is None:  # the whole pipeline, which holds any part of it asked for before
                wanted[same] = HubDownload(what, source, None)
    return wanted


def _is_hub_id(source: str) -> bool:
    from bot.model_sources import model_availability

    return model_availability(source).startswith(("hub", "cached"))


def run_pull(settings: Settings) -> int:
    downloads = hub_downloads(settings)
    if not downloads:
        print("nothing to download: every configured model is a folder or a file on this machine")
        return 0
    if settings.offline:
        raise SettingsError("offline is set (HF_HUB_OFFLINE): unset it to download models")
    for download in downloads:
        print(f"{download.what}: {download.repo}")
        fetch(download)
    print(f"{len(downloads)} download(s) complete; `dreamcord doctor` checks them")
    return 0


def fetch(download: HubDownload) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        if download.files is None:
            from diffusers import DiffusionPipeline

            DiffusionPipeline.download(download.repo, use_safetensors=True)
        else:
            snapshot_download(download.repo, allow_patterns=download.files)
    except RepositoryNotFoundError:
        raise DreamcordError(
            f"{download.repo} is not on the Hugging Face hub, or is private (set HF_TOKEN)"
        ) from None
    except (HfHubHTTPError, OSError) as error:
        raise DreamcordError(
            f"{download.repo} could not be downloaded: {str(error).splitlines()[0]}"
        ) from None
