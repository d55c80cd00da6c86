"""Settings, read once from the environment (prefix TUNELAB_) and passed into the app."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

HOME_DATA_DIR = Path.home() / ".local" / "share" / "tunelab"


def source_checkout(package_dir: Path = Path(__file__).resolve().parent) -> Path | None:
    """The checkout TuneLab runs from when it runs from source: `<checkout>/src/tunelab` beside a pyproject.toml
    that names tunelab (`make setup` installs it so, editable). None when it was installed from a wheel."""
    if package_dir.parent.name != "src":
        return None
    checkout = package_dir.parent.parent
    try:
        project = tomllib.loads((checkout / "pyproject.toml").read_text()).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return checkout if isinstance(project, dict) and project.get("name") == "tunelab" else None


def default_data_dir() -> Path:
    """`<checkout>/data` from a source checkout, the folder its `make run` serves, so that the CLI and the ops
    script of a checkout find its studio; `~/.local/share/tunelab` for an installed TuneLab."""
    checkout = source_checkout()
    return checkout / "data" if checkout is not None else HOME_DATA_DIR


# The data dir when neither TUNELAB_DATA_DIR nor --data-dir says otherwise.
DEFAULT_DATA_DIR = default_data_dir()


class Settings(BaseSettings):
    """Everything TuneLab can be configured with; each field is documented in the README."""

    model_config = SettingsConfigDict(env_prefix="TUNELAB_", extra="ignore")

    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Where the database and all files live.")
    db: Path | None = Field(default=None, description="The DuckDB file; defaults to DATA_DIR/tunelab.duckdb.")
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8000, description="Port the server listens on.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More host names the server answers to (comma-separated), besides localhost and HOST.",
    )

    import_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders (comma-separated) besides the data dir from which models and adapters may be registered.",
    )
    max_concurrent_runs: int = Field(default=1, ge=1, le=64, description="Training runs that may run at once.")
    adapter_cache_mb: float = Field(
        default=512.0, gt=0, le=1_000_000, description="Memory the generation worker may give to loaded adapters."
    )
    worker_threads: int = Field(
        default=0, ge=0, le=1024, description="CPU threads of the generation worker (0: half the cores, at least 1)."
    )
    warm_worker: bool = Field(
        default=True, description="Start the generation worker (and load the current model) when the server starts."
    )
    bootstrap_model: bool = Field(
        default=True,
        description="On first start, create the tiny MusicGen under DATA_DIR/models and make it the current model.",
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @field_validator("import_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        self.import_roots = [root.expanduser().resolve() for root in self.import_roots]
        if self.db is None:
            legacy = os.environ.get("EXPERIMENT_DB")
            self.db = Path(legacy) if legacy else self.data_dir / "tunelab.duckdb"
        self.db = self.db.expanduser().resolve()
        return self

    @property
    def db_path(self) -> Path:
        assert self.db is not None
        return self.db

    @property
    def server_file(self) -> Path:
        """The file a running server leaves its address in, next to the database it owns."""
        return self.db_path.with_name(self.db_path.name + ".server.json")

    def ensure_dirs(self) -> None:
        for sub in ("", "exports", "adapters", "runs", "audio", "models", "artifacts", "logs"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
