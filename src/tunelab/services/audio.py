"""Audio files kept by TuneLab: checked by decoding them with soundfile before anything is kept, stored under
generated ids in audio/ (never under the names users give), with their sha256, size and duration.

`receive` writes an upload or a local file to a temporary name while hashing and counting it, decodes it whole
(block by block, so a long clip is never held in memory), and only then moves it to `audio/{id}.{ext}`. Whatever
fails on the way leaves no file behind; `discard` removes kept files whose rows were never committed.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any, BinaryIO

import soundfile

from tunelab.config import Settings
from tunelab.domain.common import utcnow
from tunelab.domain.datasets import AUDIO_FORMATS, MAX_AUDIO_BYTES, MAX_CLIP_SECONDS
from tunelab.errors import PayloadTooLarge, Unprocessable

_CHUNK = 1 << 20


def invalid_audio(field: str, name: str | None, reason: str) -> Unprocessable:
    shown = f" ({name})" if name else ""
    return Unprocessable(f"{field}{shown}: {reason}", code="invalid_audio",
                         details={"field": field, "filename": name, "reason": reason})  # fmt: skip


class AudioFiles:
    def __init__(self, settings: Settings):
        self.root = settings.data_dir / "audio"

    def receive(self, source: BinaryIO, field: str, name: str | None) -> dict[str, Any]:
        """Keep the clip read from `source` if it decodes as WAV, FLAC or OGG of at most MAX_CLIP_SECONDS; its row
        for the audio table. 413 file_too_large past MAX_AUDIO_BYTES, 422 invalid_audio otherwise."""
        incoming = self.root / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        temporary = incoming / uuid.uuid4().hex
        try:
            digest, size = _copy(source, temporary, field)
            facts = _decode(temporary, field, name)
            audio_id = f"aud-{uuid.uuid4().hex[:16]}"
            target = self.root / f"{audio_id}.{AUDIO_FORMATS[facts['format']][0]}"
            temporary.replace(target)
        finally:
            temporary.unlink(missing_ok=True)
        return {"id": audio_id, "path": str(target), "sha256": digest, "size": size, **facts,
                "original_name": name, "created_at": utcnow()}  # fmt: skip

    def receive_path(self, path: Path, field: str) -> dict[str, Any]:
        with path.open("rb") as source:
            return self.receive(source, field, path.name)

    @staticmethod
    def discard(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            Path(row["path"]).unlink(missing_ok=True)


def check_clip(path: Path, field: str) -> None:
    """What `receive` would refuse of the file at `path`, without keeping anything."""
    if path.stat().st_size > MAX_AUDIO_BYTES:
        raise PayloadTooLarge(f"{field} ({path.name}): the file is larger than {MAX_AUDIO_BYTES} bytes",
                              code="file_too_large", details={"field": field, "max_bytes": MAX_AUDIO_BYTES})  # fmt: skip
    _decode(path, field, path.name)


def _copy(source: BinaryIO, target: Path, field: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with target.open("wb") as out:
        while chunk := source.read(_CHUNK):
            size += len(chunk)
            if size > MAX_AUDIO_BYTES:
                raise PayloadTooLarge(f"{field}: the file is larger than {MAX_AUDIO_BYTES} bytes", code="file_too_large",
                                      details={"field": field, "max_bytes": MAX_AUDIO_BYTES})  # fmt: skip
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _decode(path: Path, field: str, name: str | None) -> dict[str, Any]:
    """Format, rate, channels and duration of a clip that decodes whole; invalid_audio otherwise."""
    if path.stat().st_size == 0:
        raise invalid_audio(field, name, "the file is empty")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        raise invalid_audio(field, name, "not an audio file TuneLab can read (WAV, FLAC or OGG)") from None
    if info.format not in AUDIO_FORMATS:
        raise invalid_audio(field, name, f"{info.format} audio is not taken: send WAV, FLAC or OGG")
    if info.samplerate <= 0 or not 1 <= info.channels <= 8:
        raise invalid_audio(field, name, f"{info.channels} channels at {info.samplerate} Hz cannot be used")
    frames = 0
    try:
        for block in soundfile.blocks(str(path), blocksize=65_536, dtype="float32", always_2d=True):
            frames += len(block)
            if frames > MAX_CLIP_SECONDS * info.samplerate:
                raise invalid_audio(field, name, f"longer than {MAX_CLIP_SECONDS:g} s")
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise invalid_audio(field, name, f"the audio does not decode: {error}") from None
    if frames == 0:
        raise invalid_audio(field, name, "the clip holds no samples")
    return {"duration_s": round(frames / info.samplerate, 6), "sample_rate": int(info.samplerate),
            "channels": int(info.channels), "format": info.format}  # fmt: skip
