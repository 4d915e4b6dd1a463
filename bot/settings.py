"""Settings: one typed object read once at start-up from a TOML file and the environment.

Secrets (the Discord token) come from the environment only, never from the file or the logs.
"""

from __future__ import annotations

import importlib.util
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_args

from generation.bundled import BUNDLED_MODEL_NAME, bundled_model_config
from generation.config import DEVICE_CHOICES, DEVICE_PATTERN, DTYPE_CHOICES, ModelConfig, RayOptions
from generation.errors import DreamcordError, SpecError
from generation.specs import CONTROL_MODES, SchedulerName
from generation.training.defaults import check_training_overrides

CONFIG_ENV = "DREAMCORD_CONFIG"
DEFAULT_CONFIG_FILE = Path("dreamcord.toml")
_TRUE = {"1", "true", "yes", "on"}


class SettingsError(DreamcordError):
    """The configuration is invalid; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Settings:
    models: dict[str, ModelConfig]
    default_model: str = BUNDLED_MODEL_NAME
    data_dir: Path = Path("data")
    device: str = "auto"
    dtype: str = "auto"
    offline: bool = False
    database_url: str | None = None  # default: SQLite in data_dir
    devices: tuple[str, ...] = ()  # one interactive worker each; () = one on `device`
    training_devices: tuple[str, ...] | None = None  # one training worker each; None = one on `device`
    max_queued_per_user: int = 10
    pool: str = "local"  # "local": worker processes here; "ray": Ray actors in a Ray cluster
    ray: RayOptions = field(default_factory=RayOptions)
    discord_token: str | None = field(default=None, repr=False)

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

    def model(self, name: str | None) -> ModelConfig:
        """The named model's config (the default one for None), or a clear error listing the choices."""
        chosen = name or self.default_model
        if chosen not in self.models:
            raise SettingsError(
                f"unknown model {chosen!r}; configured models: {', '.join(sorted(self.models))}"
            )
        return self.models[chosen]


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (if any) then apply environment overrides; raise `SettingsError` on bad keys."""
    env = os.environ if env is None else env
    named = path or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    path = named or DEFAULT_CONFIG_FILE
    raw = _read_toml(path, required=named is not None)
    models = {BUNDLED_MODEL_NAME: bundled_model_config()}
    models.update(_parse_models(raw.pop("models", {})))
    ray = _parse_ray(raw.pop("ray", {}))
    top: dict[str, Any] = {key: raw.pop(key) for key in list(raw) if key in _TOP_LEVEL_KEYS}
    if raw:
        raise SettingsError(
            f"{path}: unknown setting(s) {', '.join(sorted(raw))}; known: {', '.join(_TOP_LEVEL_KEYS)}"
        )
    top.update(_env_overrides(env))
    if env.get("DREAMCORD_RAY_ADDRESS"):
        ray = replace(ray, address=env["DREAMCORD_RAY_ADDRESS"])
    settings = Settings(
        models=models,
        default_model=str(top.get("default_model", BUNDLED_MODEL_NAME)),
        data_dir=Path(top.get("data_dir", "data")).expanduser(),
        device=str(top.get("device", "auto")),
        dtype=str(top.get("dtype", "auto")),
        offline=_as_bool(top.get("offline", False)),
        database_url=top.get("database_url"),
        devices=tuple(top.get("devices", ())),
        training_devices=tuple(top["training_devices"]) if "training_devices" in top else None,
        max_queued_per_user=int(top.get("max_queued_per_user", 10)),
        pool=str(top.get("pool", "local")),
        ray=ray,
        discord_token=env.get("DISCORD_TOKEN") or None,
    )
    _validate(settings)
    return settings


_TOP_LEVEL_KEYS = (
    "default_model",
    "data_dir",
    "device",
    "dtype",
    "offline",
    "database_url",
    "devices",
    "training_devices",
    "max_queued_per_user",
    "pool",
)
_ENV_KEYS = {
    "DREAMCORD_DEFAULT_MODEL": "default_model",
    "DREAMCORD_DATA_DIR": "data_dir",
    "DREAMCORD_DEVICE": "device",
    "DREAMCORD_DTYPE": "dtype",
    "HF_HUB_OFFLINE": "offline",
    "DREAMCORD_DATABASE_URL": "database_url",
    "DREAMCORD_POOL": "pool",
}


def _read_toml(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise SettingsError(f"config file {path} does not exist")
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path} is not valid TOML: {error}") from None


def _env_overrides(env: Mapping[str, str]) -> dict[str, str]:
    return {key: env[name] for name, key in _ENV_KEYS.items() if env.get(name)}


def _as_bool(value: object) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE


def _parse_models(raw_models: object) -> dict[str, ModelConfig]:
    if not isinstance(raw_models, dict):
        raise SettingsError("[models] must be a table of [models.NAME] sections")
    allowed = {f.name for f in fields(ModelConfig)} - {"name"}
    models = {}
    for name, table in raw_models.items():
        if not isinstance(table, dict) or "source" not in table:
            raise SettingsError(f'[models.{name}] needs source = "owner/name" or a local folder')
        unknown = set(table) - allowed
        if unknown:
            raise SettingsError(
                f"[models.{name}]: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(allowed))}"
            )
        if table.get("scheduler", "euler_a") not in get_args(SchedulerName):
            raise SettingsError(
                f"[models.{name}] scheduler must be one of {', '.join(get_args(SchedulerName))}, got {table['scheduler']!r}"
            )
        for key, value in table.items():
            expected = _MODEL_KEY_TYPES[key]
            if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
                raise SettingsError(f"[models.{name}] {key} has the wrong type: {value!r}")
        _check_controlnets(name, table.get("controlnets", {}))
        try:
            check_training_overrides(table.get("training", {}))
        except SpecError as error:
            raise SettingsError(f"[models.{name}] {error}") from None
        models[name] = ModelConfig(name=name, **table)
    return models


_MODEL_KEY_TYPES: dict[str, type | tuple[type, ...]] = {
    "source": str,
    "scheduler": str,
    "steps": int,
    "guidance": (int, float),
    "resolution": int,
    "safety_checker": bool,
    "description": str,
    "training": dict,
    "controlnets": dict,
    "upscaler": str,
}


def _parse_ray(table: object) -> RayOptions:
    """The [ray] section: where the Ray cluster is and what each worker actor asks it for."""
    if not isinstance(table, dict):
        raise SettingsError("[ray] must be a table (address, cpus_per_worker, gpus_per_worker, …)")
    types: dict[str, type | tuple[type, ...]] = {"address": str, "namespace": str, "work_dir": str}
    types["cpus_per_worker"] = (int, float)
    types |= {"gpus_per_worker": (int, float), "local_cpus": int}
    for key, value in table.items():
        if key not in types:
            raise SettingsError(f"[ray]: unknown key {key!r}; known: {', '.join(sorted(types))}")
        if not isinstance(value, types[key]) or isinstance(value, bool):
            raise SettingsError(f"[ray] {key} has the wrong type: {value!r}")
    return RayOptions(**table)


def _check_controlnets(model: str, table: dict[str, object]) -> None:
    for mode, source in table.items():
        if mode not in CONTROL_MODES:
            raise SettingsError(
                f"[models.{model}.controlnets] {mode!r} is not a control mode; use {', '.join(CONTROL_MODES)}"
            )
        if not isinstance(source, str) or not source:
            raise SettingsError(
                f'[models.{model}.controlnets] {mode} must be a hub id or a folder, e.g. "owner/name"'
            )


def _validate(settings: Settings) -> None:
    if settings.default_model not in settings.models:
        raise SettingsError(
            f"default_model {settings.default_model!r} is not configured; configured: {', '.join(sorted(settings.models))}"
        )
    for device in (settings.device, *settings.devices, *settings.training_worker_devices):
        if not DEVICE_PATTERN.match(device):
            raise SettingsError(
                f"device must be one of {', '.join(DEVICE_CHOICES)} (or cuda:N), got {device!r}"
            )
    if settings.max_queued_per_user < 1:
        raise SettingsError(f"max_queued_per_user must be at least 1, got {settings.max_queued_per_user}")
    if settings.dtype not in DTYPE_CHOICES:
        raise SettingsError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {settings.dtype!r}")
    _check_pool(settings)


def _check_pool(settings: Settings) -> None:
    """The backend and database named exist, and their optional packages are installed."""
    if settings.pool not in ("local", "ray"):
        raise SettingsError(f'pool must be "local" or "ray", got {settings.pool!r}')
    if settings.pool == "ray" and importlib.util.find_spec("ray") is None:
        raise SettingsError("pool = \"ray\" needs Ray: pip install 'dreamcord[ray]'")
    if settings.db_url.startswith("postgresql") and importlib.util.find_spec("psycopg") is None:
        raise SettingsError("a PostgreSQL database_url needs psycopg: pip install 'dreamcord[postgres]'")
