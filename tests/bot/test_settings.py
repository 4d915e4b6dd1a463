from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings
from generation.bundled import BUNDLED_MODEL_NAME


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dreamcord.toml"
    path.write_text(text)
    return path


def test_no_file_gives_the_bundled_model_as_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./dreamcord.toml here
    settings = load_settings(None, env={})
    assert settings.default_model == BUNDLED_MODEL_NAME
    assert BUNDLED_MODEL_NAME in settings.models


def test_models_and_defaults_come_from_toml(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
default_model = "sd15"
device = "cpu"
[models.sd15]
source = "someone/sd-1-5"
scheduler = "dpmpp_2m"
steps = 30
guidance = 6
safety_checker = true
""",
    )
    settings = load_settings(path, env={})
    model = settings.model(None)
    assert (model.name, model.source, model.scheduler, model.steps, model.guidance) == (
        "sd15",
        "someone/sd-1-5",
        "dpmpp_2m",
        30,
        6,
    )
    assert model.safety_checker and settings.device == "cpu"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, 'device = "cpu"\n')
    settings = load_settings(
        path,
        env={"DREAMCORD_DEVICE": "cuda", "DREAMCORD_DATA_DIR": str(tmp_path / "d"), "HF_HUB_OFFLINE": "1"},
    )
    assert settings.device == "cuda" and settings.data_dir == tmp_path / "d" and settings.offline


def test_every_key_may_come_from_the_environment_nested_ones_with_double_underscores(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, '[models.sd15]\nsource = "a/b"\nsteps = 30\n[ray]\ngpus_per_worker = 1\n')
    settings = load_settings(
        path,
        env={
            "DREAMCORD_MODELS__SD15__STEPS": "12",
            "DREAMCORD_RAY__GPUS_PER_WORKER": "0.25",
            "DREAMCORD_DEVICES": '["cuda:0", "cuda:1"]',
            "DREAMCORD_MAX_QUEUED_PER_USER": "4",
        },
    )
    assert settings.models["sd15"].steps == 12 and settings.models["sd15"].source == "a/b"
    assert settings.ray.gpus_per_worker == 0.25 and settings.devices == ("cuda:0", "cuda:1")
    assert settings.max_queued_per_user == 4
    with pytest.raises(SettingsError, match=r"\[models.sd15\] steps has the wrong type or value: 'many'"):
        load_settings(path, env={"DREAMCORD_MODELS__SD15__STEPS": "many"})


def test_token_comes_from_the_environment_and_is_never_shown() -> None:
    settings = load_settings(None, env={"DISCORD_TOKEN": "secret-token-value"})
    assert settings.discord_token == "secret-token-value"
    assert "secret-token-value" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("colour = 'red'\n", "unknown setting(s) colour"),
        ("[models.x]\nscheduler = 'euler'\n", "needs source"),
        (
            "[models.x]\nsource = 'a/b'\nsize = 3\n",
            "[models.x]: unknown setting(s) size; known: base, batch_images, channels_last, clip_skip, compile,",
        ),
        ("[models.x]\nsource = 'a/b'\nscheduler = 'plms'\n", "scheduler must be one of"),
        ("[models.x]\nsource = 'a/b'\nsteps = 'many'\n", "steps has the wrong type"),
        ("[models.x]\nsource = 'a/b'\nbase = 'c/d'\n", "models.x: base = … is for a Flux transformer file"),
        (
            "[models.x]\nsource = 'a/b'\nupscale_strengths = {subtle = 2}\n",
            "upscale_strengths.subtle has the wrong",
        ),
        ("default_model = 'nope'\n", "default_model 'nope' is not configured"),
        ("device = 'tpu'\n", "device must be one of"),
        (
            "[models.x]\nsource = 'a/b'\n[models.x.controlnets]\nedges = 'c/d'\n",
            "'edges' is not a control mode",
        ),
        ("[models.x]\nsource = 'a/b'\n[models.x.controlnets]\ncanny = 3\n", "canny must be a hub id"),
        ("this is not toml", "not valid TOML"),
        ("pool = 'slurm'\n", "pool must be one of 'local' or 'ray', got 'slurm'"),
        ("[ray]\nadress = 'auto'\n", "[ray]: unknown setting(s) adress; known: address,"),
        ("max_queued_per_user = 0\n", "max_queued_per_user has the wrong type or value: 0"),
        ("dtype = 'f8'\n", "dtype must be one of 'auto', 'float32'"),
        ("[models.x]\nsource = 'a/b'\nname = 'y'\n", "[models.x]: unknown setting(s) name"),
        ("discord_token = 'abc'\n", "DISCORD_TOKEN environment variable only"),
        (
            "[models.x]\nsource = 'a/b'\nfamily = 'sd3'\n",
            "[models.x] family must be one of sd1, sdxl, flux, got 'sd3'",
        ),
        ("[ray]\ngpus_per_worker = 'one'\n", "gpus_per_worker has the wrong type"),
    ],
)
def test_bad_settings_fail_once_naming_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(fragment)):
        load_settings(_write(tmp_path, text), env={})


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(None, env={"DREAMCORD_CONFIG": str(tmp_path / "missing.toml")})


def test_unknown_model_lists_the_configured_ones() -> None:
    settings = load_settings(None, env={})
    with pytest.raises(SettingsError, match="configured models: bundled"):
        settings.model("sdxl")


def test_worker_devices_and_queue_limit(tmp_path: Path) -> None:
    settings = load_settings(
        _write(tmp_path, 'devices = ["cuda:0", "cuda:1"]\nmax_queued_per_user = 3\n'), env={}
    )
    assert settings.worker_devices == ("cuda:0", "cuda:1") and settings.max_queued_per_user == 3
    assert load_settings(None, env={"DREAMCORD_DEVICE": "cpu"}).worker_devices == ("cpu",)
    with pytest.raises(SettingsError, match="cuda:N"):
        load_settings(_write(tmp_path, 'devices = ["gpu0"]\n'), env={})


def test_the_ray_backend_is_chosen_in_the_file_or_the_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, 'pool = "ray"\n[ray]\naddress = "auto"\ngpus_per_worker = 0.5\n')
    settings = load_settings(path, env={})
    assert settings.pool == "ray" and settings.ray.address == "auto" and settings.ray.gpus_per_worker == 0.5
    moved = load_settings(path, env={"DREAMCORD_RAY_ADDRESS": "ray-head:6379"})
    assert moved.ray.address == "ray-head:6379" and moved.ray.gpus_per_worker == 0.5
    assert load_settings(None, env={"DREAMCORD_POOL": "ray"}).pool == "ray"
    assert load_settings(None, env={}).pool == "local"


def test_optional_backends_need_their_extras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    installed = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name in {"ray", "psycopg"} else installed(name)
    )
    with pytest.raises(SettingsError, match=r"dreamcord\[ray\]"):
        load_settings(None, env={"DREAMCORD_POOL": "ray"})
    with pytest.raises(SettingsError, match=r"dreamcord\[postgres\]"):
        load_settings(None, env={"DREAMCORD_DATABASE_URL": "postgresql+psycopg://db/dreamcord"})


def test_the_example_settings_file_is_valid() -> None:
    example = Path(__file__).parents[2] / "deploy" / "dreamcord.example.toml"
    settings = load_settings(example, env={})
    assert settings.default_model == "sd15" and settings.models["sd15"].safety_checker


def test_the_ray_deployment_settings_file_is_valid() -> None:
    example = Path(__file__).parents[2] / "deploy" / "ray" / "dreamcord.toml"
    settings = load_settings(example, env={})
    assert (
        settings.pool == "ray"
        and settings.ray.address == "auto"
        and settings.worker_devices == ("cuda", "cuda")
    )


def test_a_relative_source_beside_the_config_file_is_a_path_not_a_hub_id(tmp_path: Path) -> None:
    (tmp_path / "ckpt" / "sd15").mkdir(parents=True)
    (tmp_path / "vae").mkdir()
    text = '[models.mine]\nsource = "ckpt/sd15"\nvae = "vae"\nclip_skip = 2\n[models.hub]\nsource = "owner/name"\n'
    settings = load_settings(_write(tmp_path, text), env={})
    assert settings.models["mine"].source == str((tmp_path / "ckpt" / "sd15").resolve())
    assert settings.models["mine"].vae == str((tmp_path / "vae").resolve())
    assert settings.models["mine"].clip_skip == 2
    assert settings.models["hub"].source == "owner/name"  # nothing of that name here: a hub id


def test_a_describer_is_a_folder_beside_the_config_a_hub_id_or_the_bundled_one(tmp_path: Path) -> None:
    (tmp_path / "blip").mkdir()
    text = (
        '[models.local]\nsource = "a/b"\ndescriber = "blip"\n'
        '[models.hub]\nsource = "a/b"\ndescriber = "Salesforce/blip-image-captioning-large"\n'
        '[models.own]\nsource = "a/b"\ndescriber = "bundled"\n'
    )
    models = load_settings(_write(tmp_path, text), env={}).models
    assert models["local"].describer == str((tmp_path / "blip").resolve())
    assert models["hub"].describer == "Salesforce/blip-image-captioning-large"
    assert models["own"].describer == "bundled" and models["bundled"].describer == "bundled"


def test_an_ip_adapter_is_a_safetensors_file_in_a_folder_beside_the_config_or_on_the_hub(
    tmp_path: Path,
) -> None:
    (tmp_path / "adapters").mkdir()
    text = (
        '[models.local.ip_adapter]\nsource = "adapters"\nweight_name = "ip.safetensors"\n'
        '[models.local]\nsource = "a/b"\n'
        '[models.hub.ip_adapter]\nsource = "h94/IP-Adapter"\nsubfolder = "models"\n'
        'weight_name = "ip-adapter_sd15.safetensors"\nscale = 0.5\n'
        '[models.hub]\nsource = "a/b"\n'
    )
    models = load_settings(_write(tmp_path, text), env={}).models
    local, hub = models["local"].ip_adapter, models["hub"].ip_adapter
    assert local is not None and local.source == str((tmp_path / "adapters").resolve())
    assert hub is not None and (hub.source, hub.subfolder, hub.scale) == ("h94/IP-Adapter", "models", 0.5)
    with pytest.raises(SettingsError, match=r"weight_name must be a \.safetensors file"):
        load_settings(_write(tmp_path, text.replace("ip.safetensors", "ip.bin")), env={})


def test_memory_options_are_checked_at_start_naming_the_choices(tmp_path: Path) -> None:
    text = '[models.small]\nsource = "a/b"\noffload = "model"\nvae_tiling = true\ndtype = "float16"\n'
    small = load_settings(_write(tmp_path, text), env={}).models["small"]
    assert (small.offload, small.vae_tiling, small.dtype) == ("model", True, "float16")
    with pytest.raises(
        SettingsError, match=r"offload must be one of 'none', 'model' or 'sequential', got 'gpu'"
    ):
        load_settings(_write(tmp_path, text.replace('"model"', '"gpu"')), env={})


def test_a_relative_checkpoint_file_is_a_path_even_before_it_exists(tmp_path: Path) -> None:
    text = '[models.file]\nsource = "ckpt/model.safetensors"\nvae = "vae/fixed.safetensors"\n'
    settings = load_settings(_write(tmp_path, text), env={})
    assert settings.models["file"].source == str((tmp_path / "ckpt" / "model.safetensors").resolve())
    assert settings.models["file"].vae == str((tmp_path / "vae" / "fixed.safetensors").resolve())


def test_fused_loras_are_files_beside_the_config(tmp_path: Path) -> None:
    text = '[models.fast]\nsource = "a/b"\nscheduler = "lcm"\nsteps = 4\nfuse_loras = [{path = "lcm.safetensors", weight = 0.8}]\n'
    settings = load_settings(_write(tmp_path, text), env={})
    (fused,) = settings.models["fast"].fuse_loras
    assert fused.path == str((tmp_path / "lcm.safetensors").resolve()) and fused.weight == 0.8
    with pytest.raises(
        SettingsError,
        match=re.escape("[models.fast]: unknown setting(s) fuse_loras.0.size; known: path, weight"),
    ):
        load_settings(_write(tmp_path, text.replace("weight = 0.8", "size = 2")), env={})


def test_midjourney_versions_pick_models_through_the_operators_table(tmp_path: Path) -> None:
    from generation.prompt import parse_prompt

    folder = tmp_path / "m"
    folder.mkdir()
    settings = load_settings(
        _write(
            tmp_path,
            f'default_model = "base"\n[version_models]\n"6" = "xl"\nniji = "anime"\n'
            f'[models.base]\nsource = "{folder}"\n[models.xl]\nsource = "{folder}"\n[models.anime]\nsource = "{folder}"\n',
        ),
        env={},
    )
    chosen = {p: settings.model_for(parse_prompt(p)).name for p in
              ("a --v 6.1", "a --v 6", "a --niji 6", "a --v 5", "a", "a --v 6 --model base")}  # fmt: skip
    assert chosen == {"a --v 6.1": "xl", "a --v 6": "xl", "a --niji 6": "anime", "a --v 5": "base",
                      "a": "base", "a --v 6 --model base": "base"}  # fmt: skip
    assert settings.habit_note(parse_prompt("a --v 6 --s 100")) == (
        "--s 100: Midjourney options with no effect here, so the picture is made without them "
        "(see /help prompts for what dreamcord's flags do)"
    )
    assert settings.habit_note(parse_prompt("a --v 5")).startswith("--v 5: Midjourney options")  # type: ignore[union-attr]
    assert settings.habit_note(parse_prompt("a --v 6 --ar 2:1")) is None
    with pytest.raises(SettingsError, match="version_models '7' names model 'v7', which is not configured"):
        load_settings(_write(tmp_path, '[version_models]\n"7" = "v7"\n'), env={})


def test_the_file_read_is_the_one_asked_for_else_dreamcord_toml_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.settings import config_file_read

    monkeypatch.chdir(tmp_path)
    assert config_file_read(None, env={}) is None
    (tmp_path / "dreamcord.toml").write_text("")
    assert config_file_read(None, env={}) == Path(
        "dreamcord.toml"
    )  # what doctor names, as load_settings reads it
    assert config_file_read(None, env={"DREAMCORD_CONFIG": "/etc/x.toml"}) == Path("/etc/x.toml")
    assert config_file_read(Path("given.toml"), env={"DREAMCORD_CONFIG": "/etc/x.toml"}) == Path("given.toml")
