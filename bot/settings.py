"""Settings: one typed object read once at start-up, through pydantic-settings.

Every key comes from the TOML file or from a `DREAMCORD_…` environment variable, which wins; nested
keys are spelled with `__` (`DREAMCORD_RAY__ADDRESS`, `DREAMCORD_MODELS__SD15__STEPS`), lists as JSON
(`DREAMCORD_DEVICES='["cuda:0", "cuda:1"]'`). One validation path for both, and every problem is one
line naming the key. Secrets (the Discord token) come from the environment only, never from the file
or the logs.
"""

from __future__ import annotations

import importlib.util
import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from generation.bundled import BUNDLED_MODEL_NAME, bundled_model_config
from generation.config import (
    DEVICE_CHOICES,
    DEVICE_PATTERN,
    SINGLE_FILE_SUFFIXES,
    DtypeName,
    FusedLora,
    ModelConfig,
    RayOptions,
)
from generation.errors import DreamcordError, SpecError
from generation.models.family_facts import FAMILIES
from generation.prompt import ParsedPrompt
from generation.specs import CONTROL_MODES
from generation.training.defaults import check_training_overrides

CONFIG_ENV = "DREAMCORD_CONFIG"
DEFAULT_CONFIG_FILE = Path("dreamcord.toml")
ENV_PREFIX = "DREAMCORD_"
TOKEN_ENV = "DISCORD_TOKEN"


class SettingsError(DreamcordError):
    """The configuration is invalid; the message names the key and what is allowed."""


class Settings(BaseSettings):
    """Built by `load_settings` (file, then environment); built directly (tests), from its
    arguments alone."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_default=False,
    )

    models: dict[str, ModelConfig]
    default_model: str = BUNDLED_MODEL_NAME
    data_dir: Path = Path("data")
    device: str = "auto"
    dtype: DtypeName = "auto"
    # HF_HUB_OFFLINE is what the Hugging Face libraries read too: one switch for both.
    offline: bool = Field(default=False, validation_alias=AliasChoices("offline", "HF_HUB_OFFLINE"))
    database_url: str | None = None  # default: SQLite in data_dir
    devices: tuple[str, ...] = ()  # one interactive worker each; () = one on `device`
    training_devices: tuple[str, ...] | None = None  # one training worker each; None = one on `device`
    max_queued_per_user: int = Field(default=10, ge=1)
    pool: Literal["local", "ray"] = "local"  # "local": worker processes here; "ray": a Ray cluster
    ray: RayOptions = Field(default_factory=RayOptions)
    discord_token: str | None = Field(default=None, repr=False, validation_alias=TOKEN_ENV)
    log_level: Literal["debug", "info", "warning", "error"] = "info"  # of `dreamcord run`; -vv: debug
    # On SIGTERM/SIGINT, how long running jobs may take to finish before the bot closes (the queued
    # ones, and any still running then, resume on the next start). Keep it under the service
    # manager's stop timeout (compose stop_grace_period, systemd TimeoutStopSec).
    shutdown_grace_s: float = Field(default=25.0, ge=0, le=3600)
    # An HTTP port for /healthz and Prometheus /metrics (None: not served); health_host where it listens.
    health_port: int | None = Field(default=None, ge=1, le=65535)
    health_host: str = "127.0.0.1"
    # Midjourney's --v / --niji, as pasted prompts carry them, to configured models: {"6" = "sdxl",
    # "niji" = "anime"}. "6.1" falls back to "6", "niji 6" to "niji"; an unmapped one uses the default.
    version_models: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        loading = _LOADING.get()
        if loading is None:
            return (init_settings,)
        file_values, env = loading
        return (_MappingEnvSource(settings_cls, env), InitSettingsSource(settings_cls, file_values))

    @field_validator("models", mode="before")
    @classmethod
    def _name_each_model(cls, tables: object) -> object:
        """A `[models.NAME]` table is a ModelConfig named NAME (its name is not a key of its own)."""
        if not isinstance(tables, Mapping):
            raise SettingsError("[models] must be a table of [models.NAME] sections")
        named: dict[str, object] = {}
        for name, table in tables.items():
            if isinstance(table, Mapping):
                if "name" in table:
                    raise SettingsError(
                        f"[models.{name}]: unknown setting(s) name (the table's name is the model's)"
                    )
                if "source" not in table:
                    raise SettingsError(f'[models.{name}] needs source = "owner/name" or a local folder')
                _check_controlnets(name, table.get("controlnets", {}))
                clip_skip = table.get("clip_skip")
                if clip_skip is not None and str(clip_skip) not in {str(n) for n in range(1, 13)}:
                    raise SettingsError(
                        f"[models.{name}] clip_skip must be 1-12 (2 skips the last layer), got {clip_skip!r}"
                    )
                if table.get("family") is not None and table["family"] not in FAMILIES:
                    raise SettingsError(
                        f"[models.{name}] family must be one of {', '.join(FAMILIES)}, got {table['family']!r}"
                    )
                adapter = table.get("ip_adapter")
                if isinstance(adapter, Mapping) and not str(adapter.get("weight_name", "")).endswith(
                    ".safetensors"
                ):
                    raise SettingsError(
                        f"[models.{name}.ip_adapter] weight_name must be a .safetensors file (pickles are never "
                        f"loaded), got {adapter.get('weight_name')!r}"
                    )
                try:
                    check_training_overrides(table.get("training", {}))
                except SpecError as error:
                    raise SettingsError(f"[models.{name}] {error}") from None
                table = {**table, "name": name}
            named[name] = table
        return named

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, path: Path) -> Path:
        return path.expanduser()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.default_model not in self.models:
            raise SettingsError(
                f"default_model {self.default_model!r} is not configured; "
                f"configured: {', '.join(sorted(self.models))}"
            )
        for device in (self.device, *self.devices, *self.training_worker_devices):
            if not DEVICE_PATTERN.match(device):
                raise SettingsError(
                    f"device must be one of {', '.join(DEVICE_CHOICES)} (or cuda:N), got {device!r}"
                )
        for version, model in self.version_models.items():
            if model not in self.models:
                raise SettingsError(
                    f"version_models {version!r} names model {model!r}, which is not configured; "
                    f"configured: {', '.join(sorted(self.models))}"
                )
        if self.pool == "ray" and importlib.util.find_spec("ray") is None:
            raise SettingsError("pool = \"ray\" needs Ray: pip install 'dreamcord[ray]'")
        if self.db_url.startswith("postgresql") and importlib.util.find_spec("psycopg") is None:
            raise SettingsError("a PostgreSQL database_url needs psycopg: pip install 'dreamcord[postgres]'")
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'dreamcord.db'}"

    @property
    def worker_devices(self) -> tuple[str, ...]:
        return self.devices or (self.device,)

    @property
    def training_worker_devices(self) -> tuple[str, ...]:
        return (self.device,) if self.training_devices is None else self.training_devices

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def default_model_config(self) -> ModelConfig:
        return self.models[self.default_model]

    def model_for(self, parsed: ParsedPrompt) -> ModelConfig:
        """The model a prompt asks for: its --model, else its Midjourney --v/--niji through
        `version_models`, else the default."""
        return self.model(parsed.model or self.version_model(parsed.version))

    def version_model(self, version: str | None) -> str | None:
        if not version:
            return None
        return self.version_models.get(version) or self.version_models.get(version.split(".")[0].split()[0])

    def habit_note(self, parsed: ParsedPrompt) -> str | None:
        """One line for the Midjourney flags a prompt carried that changed nothing here (None: none)."""
        ignored = list(parsed.habits)
        if parsed.version is not None and not parsed.model and self.version_model(parsed.version) is None:
            ignored.insert(0, f"--niji {parsed.version[5:]}".strip() if parsed.version.startswith("niji")
                           else f"--v {parsed.version}".strip())  # fmt: skip
        if not ignored:
            return None
        return (
            f"{', '.join(ignored)}: Midjourney options with no effect here, so the picture is made "
            "without them (see /help prompts for what dreamcord's flags do)"
        )

    def model(self, name: str | None) -> ModelConfig:
        """The named model's config (the default one for None), or a clear error listing the choices."""
        chosen = name or self.default_model
        if chosen not in self.models:
            raise SettingsError(
                f"unknown model {chosen!r}; configured models: {', '.join(sorted(self.models))}"
            )
        return self.models[chosen]


# What `load_settings` hands the sources of the Settings it is building: the file's values, the env.
_LOADING: ContextVar[tuple[dict[str, Any], Mapping[str, str]] | None] = ContextVar("loading", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping (os.environ, or a test's) instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._given_env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # As the base class reads os.environ: names case-insensitive, empty values unset.
        return {name.lower(): value for name, value in self._given_env.items() if value != ""}


def named_config_file(path: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The settings file asked for: `path` (--config), else $DREAMCORD_CONFIG; None when neither."""
    env = os.environ if env is None else env
    return path or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)


def config_file_read(path: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The settings file `load_settings` reads: the one asked for, else ./dreamcord.toml if it exists."""
    named = named_config_file(path, env)
    return named or (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None)


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (if any) and the environment over it; raise `SettingsError` naming the key."""
    env = os.environ if env is None else env
    named = named_config_file(path, env)
    path = named or DEFAULT_CONFIG_FILE
    file_values = _read_toml(path, required=named is not None)
    for secret in ("discord_token", TOKEN_ENV):
        if secret in file_values:
            raise SettingsError(
                f"{path}: the Discord token goes in the {TOKEN_ENV} environment variable only"
            )
    models = file_values.get("models", {})
    if isinstance(models, dict):
        _paths_relative_to(path.parent, models)
        # the bundled model is always there, under its own name
        bundled = {key: value for key, value in asdict(bundled_model_config()).items() if key != "name"}
        file_values["models"] = {BUNDLED_MODEL_NAME: bundled, **models}
    env = dict(env)
    if env.get("DREAMCORD_RAY_ADDRESS"):  # the name it had before nested keys
        env.setdefault("DREAMCORD_RAY__ADDRESS", env["DREAMCORD_RAY_ADDRESS"])
    token = _LOADING.set((file_values, env))
    try:
        return Settings()  # type: ignore[call-arg]  # the sources supply `models`
    except ValidationError as error:
        raise SettingsError(one_line(error)) from None
    finally:
        _LOADING.reset(token)


def _paths_relative_to(folder: Path, models: dict[str, Any]) -> None:
    """A relative `source`, `base`, `upscaler`, `vae`, `lora_folder`, `fill`, `preview` (a tiny decoder) or
    `describer` that exists next to the config file is that path, not a hub id (`ckpt/model` would look
    like one): made absolute, so it means the same from any folder."""
    for table in models.values():
        if not isinstance(table, dict):
            continue
        for key in ("source", "base", "upscaler", "vae", "lora_folder", "fill", "preview", "describer"):
            value = table.get(key)
            if (key, value) in (("preview", "approximate"), ("preview", "vae"), ("describer", "bundled")):
                continue  # words, not paths
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                beside = folder / Path(value)
                if beside.exists() or beside.suffix.lower() in SINGLE_FILE_SUFFIXES:  # never a hub id
                    table[key] = str(beside.resolve())
        adapter = table.get("ip_adapter")
        if isinstance(adapter, dict) and (found := _existing_beside(folder, adapter.get("source"))):
            adapter["source"] = found  # a folder beside the config, not a hub id
        turbo = table.get("turbo")
        lora = turbo.get("lora") if isinstance(turbo, dict) else None
        if (
            isinstance(turbo, dict)
            and isinstance(lora, str)
            and lora
            and not Path(lora).expanduser().is_absolute()
        ):
            turbo["lora"] = str((folder / lora).resolve())  # a file on this server, never a hub id
        for fused in table.get("fuse_loras", ()) if isinstance(table.get("fuse_loras"), list) else ():
            path = fused.get("path") if isinstance(fused, dict) else None
            if isinstance(path, str) and path and not Path(path).expanduser().is_absolute():
                fused["path"] = str((folder / path).resolve())  # a file on this server, never a hub id


def _existing_beside(folder: Path, value: object) -> str | None:
    """`value` as an absolute path when it is a relative one that exists in `folder`."""
    if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
        return None
    beside = folder / value
    return str(beside.resolve()) if beside.exists() else None


def _read_toml(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise SettingsError(f"config file {path} does not exist")
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path} is not valid TOML: {error}") from None


def _check_controlnets(model: str, table: object) -> None:
    if not isinstance(table, Mapping):
        raise SettingsError(f"[models.{model}.controlnets] must be a table of mode = source")
    for mode, source in table.items():
        if mode not in CONTROL_MODES:
            raise SettingsError(
                f"[models.{model}.controlnets] {mode!r} is not a control mode; use {', '.join(CONTROL_MODES)}"
            )
        if not isinstance(source, str) or not source:
            raise SettingsError(
                f'[models.{model}.controlnets] {mode} must be a hub id or a folder, e.g. "owner/name"'
            )


def _key(location: tuple[int | str, ...]) -> str:
    """A validation error's location as the file spells it: `device`, `[ray] address`,
    `[models.sd15] steps`."""
    parts = [str(part) for part in location if not str(part).startswith("function-")]
    if parts[:1] == ["models"] and len(parts) >= 3:
        return f"[models.{parts[1]}] {'.'.join(parts[2:])}"
    if parts[:1] == ["ray"] and len(parts) >= 2:
        return f"[ray] {'.'.join(parts[1:])}"
    return ".".join(parts)


def _known_keys(location: tuple[int | str, ...]) -> str:
    if location[:1] == ("models",) and "fuse_loras" in location:
        names = [field.name for field in fields(FusedLora)]
    elif location[:1] == ("models",):
        names = [field.name for field in fields(ModelConfig)]
    elif location[:1] == ("ray",):
        names = [field.name for field in fields(RayOptions)]
    else:
        names = list(Settings.model_fields)
    return ", ".join(sorted(set(names) - {"name", "discord_token"}))


def _describe(error: ErrorDetails) -> str:
    location, kind = error["loc"], error["type"]
    key = _key(location)
    shown = repr(error.get("input"))[:60]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        where, _, unknown = key.rpartition(" ") if key.startswith("[") else ("", "", key)
        prefix = f"{where}: " if where else ""
        return f"{prefix}unknown setting(s) {unknown}; known: {_known_keys(location)}"
    if kind == "missing":
        return f"{key} is required"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{key} must be one of {expected}, got {shown}"
    if kind == "value_error":  # a check of the model's own (ModelConfig.__post_init__): its words
        return f"{key}: {error.get('ctx', {}).get('error', error['msg'])}"
    return f"{key} has the wrong type or value: {shown} ({error['msg'].lower()})"


def one_line(error: ValidationError) -> str:
    """The first problem of a validation error as one line that names the key."""
    return _describe(error.errors()[0])
