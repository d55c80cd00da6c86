"""Datasets: create, list, add and delete items (uploaded, imported or made by the demo), and export them as the
training command's JSONL.

An item's audio is checked and kept first (services/audio.py), then its rows are written in one transaction; if
that fails, the kept files are removed, so a refused item leaves nothing behind. A dataset's type is fixed once it
holds items. Deleting an item removes it from the dataset; its audio stays, as exports and runs that used it still
name it (audio is immutable, like artifacts).

Export writes the JSONL with absolute paths to `exports/{dataset_id}/{sha256}.jsonl`, the file the artifact names
(so a run's frozen input never changes under it), and copies it to `exports/{dataset_id}/data.jsonl`, the latest.
The same content is the same artifact.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from tunelab.config import Settings
from tunelab.domain.artifacts import Artifact
from tunelab.domain.common import Page, utcnow
from tunelab.domain.datasets import (
    Audio,
    Dataset,
    DatasetCreate,
    DatasetDetail,
    DatasetItem,
    DatasetType,
)
from tunelab.errors import Conflict, NotFound, Unprocessable
from tunelab.services.audio import AudioFiles, check_clip
from tunelab.services.experiments import new_id
from tunelab.store import artifacts as artifact_store
from tunelab.store import datasets as store
from tunelab.store.db import Connection, Database

Upload = tuple[BinaryIO, str | None]  # an open file and the name it was sent under


def dataset_not_found(dataset_id: str) -> NotFound:
    return NotFound(f"Dataset {dataset_id!r} does not exist", code="dataset_not_found",
                    details={"dataset_id": dataset_id})  # fmt: skip


def invalid_item(message: str, **details: Any) -> Unprocessable:
    return Unprocessable(message, code="invalid_item", details=details)


class DatasetService:
    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings
        self.audio_files = AudioFiles(settings)

    def create(self, data: DatasetCreate) -> Dataset:
        now = utcnow()
        row: dict[str, Any] = {"id": new_id("ds"), "name": data.name, "type": data.type.value, "description": data.description,
               "created_at": now, "updated_at": now}  # fmt: skip
        with self.db.transaction() as con:
            owner = store.name_owner(con, data.name)
            if owner is not None:
                raise Conflict(f"A dataset is named {data.name!r} already", code="dataset_name_taken",
                               details={"name": data.name, "dataset_id": owner})  # fmt: skip
            store.insert_row(con, "datasets", row)
        return Dataset(**row, item_count=0, total_duration_s=0.0)

    def list_page(self) -> Page[Dataset]:
        with self.db.read() as con:
            found = [Dataset(**row) for row in store.all_datasets(con)]
        return Page(items=found, total=len(found), page=1, page_size=max(1, len(found)))

    def get(self, dataset_id: str) -> Dataset:
        with self.db.read() as con:
            return self._get(con, dataset_id)

    @staticmethod
    def _get(con: Connection, dataset_id: str) -> Dataset:
        row = store.get(con, dataset_id)
        if row is None:
            raise dataset_not_found(dataset_id)
        return Dataset(**row)

    def detail(self, dataset_id: str) -> DatasetDetail:
        with self.db.read() as con:
            dataset = self._get(con, dataset_id)
            items = [DatasetItem(**row) for row in store.items(con, dataset_id)]
        return DatasetDetail(**dataset.model_dump(), items=items)

    def add_item(self, dataset_id: str, fields: dict[str, str], files: dict[str, Upload],
                 source: str = "upload") -> DatasetItem:  # fmt: skip
        """One item from form fields (prompt, rating) and files (audio; or chosen and rejected)."""
        dataset = self.get(dataset_id)
        prompt, rating, sides = _checked_item(dataset.type, fields, set(files))
        kept: list[dict[str, Any]] = []
        try:
            for side in sides:
                stream, name = files[side]
                kept.append(self.audio_files.receive(stream, side, name))
            return self._insert(dataset_id, [_item_row(dataset_id, prompt, rating, dict(zip(sides, kept, strict=True)),
                                                       source)], kept)[0]  # fmt: skip
        except BaseException:
            AudioFiles.discard(kept)
            raise

    def add_items(self, dataset_id: str, records: list[dict[str, Any]], root: Path, source: str) -> list[DatasetItem]:
        """Items from manifest records (the training JSONL's fields, paths relative to `root`), all or none."""
        dataset = self.get(dataset_id)
        checked = _checked_records(dataset.type, records, root)
        kept: list[dict[str, Any]] = []
        rows = []
        try:
            for number, (prompt, rating, files) in enumerate(checked, start=1):
                stored = {}
                for side, path in files.items():
                    try:
                        stored[side] = self.audio_files.receive_path(path, side)
                    except Unprocessable as error:
                        raise Unprocessable(f"line {number}: {error.message}", code=error.code,
                                            details={**error.details, "line": number}) from None  # fmt: skip
                    kept.append(stored[side])
                rows.append(_item_row(dataset_id, prompt, rating, stored, source))
            return self._insert(dataset_id, rows, kept)
        except BaseException:
            AudioFiles.discard(kept)
            raise

    def _insert(self, dataset_id: str, rows: list[dict[str, Any]], audio: list[dict[str, Any]]) -> list[DatasetItem]:
        with self.db.transaction() as con:
            dataset = self._get(con, dataset_id)  # it may have changed type while the files were checked
            kinds = {DatasetType.SUPERVISED: "audio_id", DatasetType.PREFERENCE: "chosen_audio_id"}
            if any(row[kinds[dataset.type]] is None for row in rows):
                raise Conflict(f"Dataset {dataset.name!r} changed type", code="dataset_type_changed")
            store.insert_rows(con, "audio", audio)
            store.insert_rows(con, "dataset_items", rows)
            store.touch(con, dataset_id, utcnow())
        return [DatasetItem(**row) for row in rows]

    def delete_item(self, dataset_id: str, item_id: str) -> Dataset:
        with self.db.transaction() as con:
            self._get(con, dataset_id)
            if store.item(con, dataset_id, item_id) is None:
                raise NotFound(f"Dataset {dataset_id!r} has no item {item_id!r}", code="item_not_found",
                               details={"dataset_id": dataset_id, "item_id": item_id})  # fmt: skip
            store.delete_item(con, item_id)
            store.touch(con, dataset_id, utcnow())
            return self._get(con, dataset_id)

    def demo(self) -> Dataset:
        """A supervised dataset of synthesised melodies (services/demo.py), for a first run without clips."""
        from tunelab.services.demo import create_demo

        return create_demo(self)

    def audio(self, audio_id: str) -> tuple[Audio, Path]:
        with self.db.read() as con:
            row = store.audio(con, audio_id)
        if row is None:
            raise NotFound(f"Audio {audio_id!r} does not exist", code="audio_not_found",
                           details={"audio_id": audio_id})  # fmt: skip
        return Audio(**row), Path(row["path"])

    def export(self, dataset_id: str) -> Artifact:
        """The dataset as the training command's JSONL (absolute paths), recorded as a dataset_export artifact."""
        with self.db.read() as con:
            dataset = self._get(con, dataset_id)
            rows = store.items(con, dataset_id)
            paths = store.audio_paths(con, [a for row in rows for a in _audio_ids(row)])
        if not rows:
            raise Unprocessable(f"Dataset {dataset.name!r} has no items to export", code="dataset_empty",
                                details={"dataset_id": dataset_id})  # fmt: skip
        text = "".join(json.dumps(_line(dataset.type, row, paths), ensure_ascii=False) + "\n" for row in rows)
        body = text.encode()
        sha256 = hashlib.sha256(body).hexdigest()
        folder = self.settings.data_dir / "exports" / dataset_id
        folder.mkdir(parents=True, exist_ok=True)
        frozen = folder / f"{sha256}.jsonl"
        _write_atomically(frozen, body)
        _write_atomically(folder / "data.jsonl", body)
        with self.db.transaction() as con:
            artifact_id = artifact_store.same_content(con, {
                "id": new_id("art"), "type": "dataset_export", "uri": str(frozen), "sha256": sha256,
                "size": len(body), "created_at": utcnow(),
                "metadata": {"dataset_id": dataset_id, "dataset_name": dataset.name, "type": dataset.type.value,
                             "items": len(rows), "format": "jsonl"},
            })  # fmt: skip
            artifact = artifact_store.get(con, artifact_id)
        assert artifact is not None
        return artifact


def _checked_item(kind: DatasetType, fields: dict[str, str], sides: set[str]) -> tuple[str, int | None, list[str]]:
    """The item's prompt, rating and the file fields it takes; 422 invalid_item naming what is wrong."""
    prompt = (fields.get("prompt") or "").strip()
    if not prompt:
        raise invalid_item("Every item needs a prompt", field="prompt")
    if len(prompt) > 2000:
        raise invalid_item("A prompt has at most 2000 characters", field="prompt")
    if kind is DatasetType.SUPERVISED:
        raw = (fields.get("rating") or "").strip()
        if not raw.isdigit() or not 1 <= int(raw) <= 5:
            raise invalid_item("A supervised item needs a rating from 1 to 5", field="rating", value=raw)
        if "audio" not in sides:
            raise invalid_item("A supervised item needs its clip (the file field `audio`)", field="audio")
        return prompt, int(raw), ["audio"]
    missing = [side for side in ("chosen", "rejected") if side not in sides]
    if missing:
        raise invalid_item(f"A preference item needs both clips: {' and '.join(missing)} missing", field=missing[0],
                           missing=missing)  # fmt: skip
    return prompt, None, ["chosen", "rejected"]


def _checked_records(
    kind: DatasetType, records: list[dict[str, Any]], root: Path
) -> list[tuple[str, int | None, dict[str, Path]]]:
    """Each manifest record's prompt, rating and audio files (inside `root`); 422 invalid_item naming the line."""
    resolved = root.resolve()
    checked = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise invalid_item(f"line {number}: not a JSON object", line=number)
        paths = {side: record.get(f"{side}_path") for side in ("audio", "chosen", "rejected")}
        fields = {k: str(record[k]) for k in ("prompt", "rating") if record.get(k) is not None}
        try:
            prompt, rating, sides = _checked_item(kind, fields, {side for side, path in paths.items() if path})
            files = {side: _inside(resolved, str(paths[side])) for side in sides}
        except Unprocessable as error:
            raise invalid_item(f"line {number}: {error.message}", **{**error.details, "line": number}) from None
        checked.append((prompt, rating, files))
    return checked


def check_manifest(kind: DatasetType, records: list[dict[str, Any]], root: Path) -> None:
    """What add_items would refuse, found before anything is made: every line, and every clip decoded."""
    if not records:
        raise invalid_item("The manifest has no lines")
    for number, (_, _, files) in enumerate(_checked_records(kind, records, root), start=1):
        for side, path in files.items():
            try:
                check_clip(path, side)
            except Unprocessable as error:
                raise Unprocessable(f"line {number}: {error.message}", code=error.code,
                                    details={**error.details, "line": number}) from None  # fmt: skip


def _inside(root: Path, relative: str) -> Path:
    """A manifest's audio path, resolved against its folder, which it may not leave (symlinks resolved)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise invalid_item(f"{relative} lies outside the imported folder", field="path", path=relative)
    if not path.is_file():
        raise invalid_item(f"{relative} is not a file in the imported folder", field="path", path=relative)
    return path


def _item_row(dataset_id: str, prompt: str, rating: int | None, audio: dict[str, dict[str, Any]],
              source: str) -> dict[str, Any]:  # fmt: skip
    return {
        "id": f"item-{uuid.uuid4().hex[:16]}", "dataset_id": dataset_id, "prompt": prompt, "rating": rating,
        "audio_id": audio["audio"]["id"] if "audio" in audio else None,
        "chosen_audio_id": audio["chosen"]["id"] if "chosen" in audio else None,
        "rejected_audio_id": audio["rejected"]["id"] if "rejected" in audio else None,
        "duration_s": round(sum(a["duration_s"] for a in audio.values()), 6), "source": source, "created_at": utcnow(),
    }  # fmt: skip


def _audio_ids(row: dict[str, Any]) -> Iterable[str]:
    return [row[k] for k in ("audio_id", "chosen_audio_id", "rejected_audio_id") if row[k]]


def _line(kind: DatasetType, row: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    if kind is DatasetType.SUPERVISED:
        return {"prompt": row["prompt"], "audio_path": paths[row["audio_id"]], "rating": row["rating"]}
    return {"prompt": row["prompt"], "chosen_path": paths[row["chosen_audio_id"]],
            "rejected_path": paths[row["rejected_audio_id"]]}  # fmt: skip


def _write_atomically(path: Path, body: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        temporary.write_bytes(body)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
