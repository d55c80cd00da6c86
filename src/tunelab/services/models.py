"""Base models: register MusicGen folders, list them, and the studio's settings (which model is current).

A base model is also an artifact (type `base_model`, sha256 of its files), so runs can name it as an input; the
same files registered again are the same artifact. On first start the server creates the tiny MusicGen and makes it
the current model (`ensure_default`), so a fresh data dir can train at once.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab.config import Settings
from tunelab.domain.common import ID_PATTERN, utcnow
from tunelab.domain.models import HUB_ID, TINY_MODEL_ID, BaseModelCreate, BaseModelInfo, SettingsUpdate, StudioSettings
from tunelab.errors import Conflict, NotFound, Unprocessable
from tunelab.musicgen.describe import content_sha256, describe_model
from tunelab.musicgen.weights import ModelError
from tunelab.services.experiments import new_id
from tunelab.services.paths import confined
from tunelab.store import artifacts as artifact_store
from tunelab.store import models as store
from tunelab.store.db import Database

log = logging.getLogger(__name__)
CURRENT_MODEL = "current_model_id"


def model_not_found(model_id: str) -> NotFound:
    return NotFound(f"Base model {model_id!r} is not registered", code="model_not_found",
                    details={"model_id": model_id})  # fmt: skip


class ModelService:
    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings
        self.current_changed: list[Callable[[str], None]] = []

    def list(self) -> list[BaseModelInfo]:
        with self.db.read() as con:
            current = store.setting(con, CURRENT_MODEL)
            return [_info(row, current) for row in store.all_models(con)]

    def get(self, model_id: str) -> BaseModelInfo:
        with self.db.read() as con:
            row = store.get(con, model_id)
            if row is None:
                raise model_not_found(model_id)
            return _info(row, store.setting(con, CURRENT_MODEL))

    def current(self) -> BaseModelInfo | None:
        model_id = self.studio_settings().current_model_id
        return self.get(model_id) if model_id else None

    def add(self, data: BaseModelCreate) -> BaseModelInfo:
        """Register a MusicGen folder (checked and described without loading it); the first becomes current."""
        folder, downloaded = self._folder(data)
        try:
            return self._register(data, folder)
        except BaseException:
            if downloaded:  # a download is kept only for a model that was registered
                shutil.rmtree(folder, ignore_errors=True)
            raise

    def _register(self, data: BaseModelCreate, folder: Path) -> BaseModelInfo:
        try:
            facts = describe_model(folder, data.max_duration_s)
        except ModelError as error:
            raise Unprocessable(f"{data.path} is not a MusicGen TuneLab can use: {error}", code="invalid_model",
                                details={"path": data.path, "reason": str(error)}) from None  # fmt: skip
        model_id = data.id or _id_for(folder.name)
        sha256, size = content_sha256(folder)
        now = utcnow()
        with self.db.transaction() as con:
            if store.get(con, model_id) is not None:
                raise Conflict(f"A base model {model_id!r} is registered already", code="model_exists",
                               details={"model_id": model_id})  # fmt: skip
            artifact_id = artifact_store.same_content(con, {
                "id": new_id("art"), "type": "base_model", "uri": str(folder), "sha256": sha256, "size": size,
                "metadata": {"model_id": model_id, "fingerprint": facts.fingerprint}, "created_at": now,
            })  # fmt: skip
            row: dict[str, Any] = {
                "id": model_id, "display_name": data.display_name or model_id, "path": str(folder),
                "sample_rate": facts.sample_rate, "frame_rate": facts.frame_rate, "num_codebooks": facts.num_codebooks,
                "max_duration_s": facts.max_duration_s, "fingerprint": facts.fingerprint,
                "artifact_id": artifact_id, "created_at": now,
            }  # fmt: skip
            store.insert(con, row)
            current = store.setting(con, CURRENT_MODEL)
            if current is None:
                store.set_setting(con, CURRENT_MODEL, model_id)
                current = model_id
        log.info("registered base model %s from %s", model_id, folder)
        return _info(row, current)

    def _folder(self, data: BaseModelCreate) -> tuple[Path, bool]:
        """The local folder of `data.path` (confined to the data dir and import roots), or a new folder under
        models/ that it was downloaded to from the hub; and whether it was downloaded."""
        if _exists(Path(data.path)) or not HUB_ID.fullmatch(data.path):
            return confined(data.path, self.settings, "Model folder"), False
        target = self.settings.data_dir / "models" / (data.id or _id_for(data.path.replace("/", "-")))
        if target.exists():
            raise Conflict(f"{target} exists already; give the model another id", code="model_exists",
                           details={"path": str(target)})  # fmt: skip
        try:
            from huggingface_hub import snapshot_download

            snapshot_download(data.path, local_dir=target,
                              allow_patterns=["*.json", "*.safetensors", "spiece.model", "*.txt"])  # fmt: skip
        except Exception as error:  # no network, unknown repo, refused: all say the same to the user
            shutil.rmtree(target, ignore_errors=True)
            raise Unprocessable(f"Could not download {data.path} from the Hugging Face hub: {error}",
                                code="invalid_model", details={"path": data.path}) from None  # fmt: skip
        return target.resolve(), True

    def studio_settings(self) -> StudioSettings:
        with self.db.read() as con:
            return StudioSettings(current_model_id=store.setting(con, CURRENT_MODEL))

    def update_settings(self, data: SettingsUpdate) -> StudioSettings:
        with self.db.transaction() as con:
            if data.current_model_id is not None:
                if store.get(con, data.current_model_id) is None:
                    raise Unprocessable(f"Base model {data.current_model_id!r} is not registered",
                                        code="model_not_found", details={"model_id": data.current_model_id})  # fmt: skip
                store.set_setting(con, CURRENT_MODEL, data.current_model_id)
            settings = StudioSettings(current_model_id=store.setting(con, CURRENT_MODEL))
        if settings.current_model_id is not None:
            for listener in self.current_changed:  # the generation worker reloads
                listener(settings.current_model_id)
        return settings

    def ensure_default(self) -> BaseModelInfo | None:
        """On a data dir without base models: create the tiny MusicGen under models/ and register it as current."""
        with self.db.read() as con:
            if store.all_models(con):
                return None
        folder = self.settings.data_dir / "models" / TINY_MODEL_ID
        if not (folder / "model.safetensors").is_file():  # a folder left by a start that was cut short is redone
            from tunelab.musicgen.tiny import create_tiny_musicgen

            log.info("creating the tiny MusicGen in %s (first start only; trained once per machine, ~2 min)", folder)
            partial = folder.with_name(folder.name + ".partial")
            for leftover in (partial, folder):
                shutil.rmtree(leftover, ignore_errors=True)
            create_tiny_musicgen(partial)
            partial.replace(folder)
        return self.add(BaseModelCreate(path=str(folder), id=TINY_MODEL_ID, display_name="Tiny MusicGen (demo)"))


def _exists(path: Path) -> bool:
    """Whether `path` exists; a name the system cannot even look up (too long, a NUL byte) does not."""
    try:
        return path.expanduser().exists()
    except (OSError, ValueError, RuntimeError):
        return False


def _id_for(name: str) -> str:
    """A model id from a folder name: its characters that ids allow."""
    candidate = re.sub(r"[^A-Za-z0-9._:-]+", "-", name).strip("-._:")[:128]
    return candidate if candidate and ID_PATTERN.fullmatch(candidate) else new_id("model")


def _info(row: dict[str, Any], current: str | None) -> BaseModelInfo:
    return BaseModelInfo(**row, current=row["id"] == current)
