"""Adapters as portable archives: a zip holding the PEFT folder (adapter_config.json, adapter_model.safetensors), a
model card (README.md whose metadata names the base model with `base_model_relation: adapter`, ready for a model
hub), the training config and `tunelab.json` (the registry's record); and such a zip unpacked safely to import it.

Unpacking takes only the files an adapter needs, by their plain names (at the archive's root or in one top folder):
no paths, links or other files are written, and the sizes are held to a limit as they are read.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import IO, Any

from tunelab.domain.adapters import MAX_ARCHIVE_BYTES, Adapter
from tunelab.domain.config_display import present
from tunelab.domain.models import HUB_ID, BaseModelInfo

CARD = "README.md"
RECORD = "tunelab.json"
TRAINING_CONFIG = "training_config.json"
KEPT = ("adapter_config.json", "adapter_model.safetensors", CARD, TRAINING_CONFIG, RECORD)
PICKLES = re.compile(r".*\.(bin|pt|pth|pkl|ckpt)$")


class ArchiveError(Exception):
    """An archive that is not an exported adapter, with the reason."""


def archive_name(adapter: Adapter) -> str:
    """A file-system-safe `{name}-{version}` for the archive and its folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", adapter.name).strip("-.") or "adapter"
    return f"{safe[:80]}-{adapter.version}"


def write_archive(adapter: Adapter, model: BaseModelInfo | None, target: Path) -> Path:
    """The adapter's folder, model card, training config and record zipped into `target` (written whole, then
    moved into place). The weights are stored as they are; the text files compressed."""
    folder = Path(adapter.storage_path)
    top = archive_name(adapter)
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(partial, "w") as archive:
            archive.write(folder / "adapter_config.json", f"{top}/adapter_config.json", zipfile.ZIP_DEFLATED)
            archive.write(folder / "adapter_model.safetensors", f"{top}/adapter_model.safetensors", zipfile.ZIP_STORED)
            archive.writestr(f"{top}/{CARD}", model_card(adapter, model), zipfile.ZIP_DEFLATED)
            if adapter.training_config:
                archive.writestr(f"{top}/{TRAINING_CONFIG}", json.dumps(adapter.training_config, indent=2),
                                 zipfile.ZIP_DEFLATED)  # fmt: skip
            archive.writestr(f"{top}/{RECORD}", json.dumps(record(adapter, model), indent=2), zipfile.ZIP_DEFLATED)
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def record(adapter: Adapter, model: BaseModelInfo | None) -> dict[str, Any]:
    """What an import needs to register the adapter again as it was."""
    return {
        "format": "tunelab-adapter/1", "name": adapter.name, "version": adapter.version,
        "description": adapter.description, "metrics": adapter.metrics, "lora": adapter.lora,
        "base_model": {"id": adapter.base_model_id, "display_name": model.display_name if model else None,
                       "fingerprint": model.fingerprint if model else None},
        "provenance": {"source": adapter.source.value, "experiment_id": adapter.experiment_id, "run_id": adapter.run_id,
                       "training_dataset_id": adapter.training_dataset_id},
        "created_at": adapter.created_at.isoformat() + "Z",
    }  # fmt: skip


def model_card(adapter: Adapter, model: BaseModelInfo | None) -> str:
    """A Hugging Face model card: YAML metadata (base_model, base_model_relation: adapter, library_name: peft, …),
    then what the adapter is, how it was trained and how to load it."""
    base = _hub_name(adapter, model)
    lines = [
        "---",
        f"base_model: {json.dumps(base)}",
        "base_model_relation: adapter",
        "library_name: peft",
        "pipeline_tag: text-to-audio",
        "tags:", "- musicgen", "- lora", "- text-to-music", "- tunelab",
        "---", "",
        f"# {adapter.name} {adapter.version}", "",
        adapter.description or "A LoRA adapter for MusicGen.", "",
        f"- Base model: {model.display_name if model else base} (`{base}`)"
        + (f", {model.sample_rate} Hz, clips up to {model.max_duration_s:g} s" if model else ""),
        f"- LoRA: rank {adapter.lora.get('r', '?')}, alpha {adapter.lora.get('lora_alpha', '?')}, on "
        + ", ".join(adapter.lora.get("target_modules", [])),
        f"- Exported from TuneLab ({adapter.source.value}"
        + (f": experiment `{adapter.experiment_id}`, run `{adapter.run_id}`" if adapter.run_id else "") + ")",
        "",
    ]  # fmt: skip
    groups = present(adapter.training_config)
    if groups:
        lines += ["## Training configuration", "", "| Group | Parameter | Value |", "| --- | --- | --- |"]
        lines += [f"| {group.name} | {entry.label} | {entry.display} |" for group in groups for entry in group.entries]
        lines.append("")
    if adapter.metrics:
        lines += ["## Metrics", "", "| Metric | Value |", "| --- | --- |"]
        lines += [f"| {key} | {value:.6g} |" if isinstance(value, float) else f"| {key} | {value} |"
                  for key, value in sorted(adapter.metrics.items())]  # fmt: skip
        lines.append("")
    lines += [
        "## Use", "", "```python", "from peft import PeftModel",
        "from transformers import AutoProcessor, MusicgenForConditionalGeneration", "",
        f"model = MusicgenForConditionalGeneration.from_pretrained({base!r})",
        "model = PeftModel.from_pretrained(model, \"path/to/this/folder\")",
        f"processor = AutoProcessor.from_pretrained({base!r})", "```", "",
    ]  # fmt: skip
    return "\n".join(lines)


def _hub_name(adapter: Adapter, model: BaseModelInfo | None) -> str:
    """The base model as a hub would name it: its hub id when it came from one, else its TuneLab id."""
    if model is not None and HUB_ID.fullmatch(model.path):
        return model.path
    return adapter.base_model_id or "unknown"


def unpack_archive(source: IO[bytes], target: Path) -> dict[str, Any]:
    """Unpack an exported adapter zip into the new folder `target` (ArchiveError, and nothing left, if it is not
    one); return its tunelab.json record ({} when it has none)."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ArchiveError(f"the file is not a zip archive ({error})") from None
    with archive:
        members = _members(archive)
        target.mkdir(parents=True)
        try:
            for name, info in members.items():
                _extract(archive, info, target / name)
            raw = (target / RECORD).read_text() if (target / RECORD).is_file() else "{}"
            try:
                found = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise ArchiveError(f"{RECORD} is not JSON: {error}") from None
            return found if isinstance(found, dict) else {}
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's files an adapter needs, by plain name, from its root or its one top folder."""
    infos = [info for info in archive.infolist() if not info.is_dir()]
    tops = {info.filename.split("/", 1)[0] for info in infos if "/" in info.filename}
    prefix = f"{tops.pop()}/" if len(tops) == 1 and all("/" in i.filename for i in infos) else ""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename.removeprefix(prefix)
        if PICKLES.fullmatch(name):
            raise ArchiveError(f"the archive holds pickle weights ({name}); TuneLab loads safetensors only")
        if name in KEPT:
            if info.file_size > MAX_ARCHIVE_BYTES:
                raise ArchiveError(f"{name} is larger than {MAX_ARCHIVE_BYTES} bytes")
            members[name] = info
    if "adapter_config.json" not in members or "adapter_model.safetensors" not in members:
        raise ArchiveError("the archive holds no PEFT adapter (adapter_config.json and adapter_model.safetensors)")
    return members


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> None:
    """One member, read in chunks and held to the size it declares (a zip may lie about it)."""
    written = 0
    try:
        with archive.open(info) as source, path.open("wb") as sink:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > info.file_size:
                    raise ArchiveError(f"{info.filename} is larger than the archive says")
                sink.write(chunk)
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as error:  # bad CRC, method, password
        raise ArchiveError(f"{info.filename} cannot be unpacked: {error}") from None
