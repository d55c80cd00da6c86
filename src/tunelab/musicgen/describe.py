"""What a MusicGen folder in Hugging Face format is, read from its JSON files and safetensors headers alone:
nothing is loaded, nothing unpickled, and it takes milliseconds however large the weights.

- `read_header`: a safetensors file's tensor names, dtypes and shapes (the 8-byte length, then JSON).
- `describe_model`: checks that a folder is a mono MusicGen with safetensors weights and a processor, and reads
  its capabilities (sample rate, frame rate, codebooks, longest clip) and an architecture fingerprint: the
  decoder's settings and the names and shapes of its tensors, which is what a LoRA adapter must fit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.musicgen.weights import ModelError, check_model_folder

HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own limit on a header
LONGEST_CLIP_S = 30.0  # MusicGen was trained on 30 s clips; its position table allows a little more
_DECODER_FACTS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "ffn_dim", "num_codebooks",
                  "vocab_size", "audio_channels")  # fmt: skip
_TOKENIZER_FILES = ("tokenizer.json", "spiece.model")
_FEATURE_FILES = ("preprocessor_config.json", "processor_config.json")


@dataclass(frozen=True)
class ModelFacts:
    sample_rate: int
    frame_rate: int
    num_codebooks: int
    max_duration_s: float
    fingerprint: str  # sha256 of the decoder's settings and tensor shapes
    config: dict[str, Any]  # config.json as stored


DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
               "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "C64": 8}  # fmt: skip


def read_header(path: Path) -> dict[str, tuple[str, list[int]]]:
    """Tensor name -> (dtype, shape) from a safetensors file's header; ModelError if it is not one.

    The header is checked against the file as safetensors itself does: its length fits the file, every tensor's
    byte range matches its dtype and shape, and the ranges end where the file ends. No tensor data is read."""
    try:
        with path.open("rb") as file:
            prefix = file.read(8)
            if len(prefix) != 8:
                raise ModelError(f"{path.name} is not a safetensors file (too short)")
            (length,) = struct.unpack("<Q", prefix)
            if length > HEADER_LIMIT:
                raise ModelError(f"{path.name} is not a safetensors file (header of {length} bytes)")
            raw = file.read(length)
            size = os.fstat(file.fileno()).st_size
    except OSError as error:
        raise ModelError(f"cannot read {path.name}: {error.strerror}") from None
    if len(raw) != length:
        raise ModelError(f"{path.name} is not a safetensors file (its header says {length} bytes; the file is shorter)")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{path.name} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path.name} is not a safetensors file (its header is not a JSON object)")
    tensors: dict[str, tuple[str, list[int]]] = {}
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not isinstance(dtype, str) or not isinstance(shape, list) or not all(_natural(n) for n in shape):
            raise ModelError(f"{path.name}: tensor {name!r} has no dtype and shape")
        if dtype not in DTYPE_BYTES:
            raise ModelError(f"{path.name}: tensor {name!r} has an unknown dtype {dtype!r}")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_natural(n) for n in offsets):
            raise ModelError(f"{path.name}: tensor {name!r} has no data offsets")
        begin, end = offsets
        if end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise ModelError(f"{path.name}: tensor {name!r} claims {end - begin} bytes for a {dtype} tensor of shape "
                             f"{shape}")  # fmt: skip
        data_end = max(data_end, end)
        tensors[name] = (dtype, shape)
    if 8 + length + data_end != size:
        raise ModelError(f"{path.name} is not a whole safetensors file (its header describes {8 + length + data_end} "
                         f"bytes; the file has {size})")  # fmt: skip
    return tensors


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def json_file(path: Path) -> dict[str, Any]:
    """The JSON object in `path`, or ModelError saying why it is not one."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"the folder has no {path.name}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path.name} cannot be read as JSON: {error}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path.name} is not a JSON object")
    return data


def describe_model(folder: Path, max_duration_s: float | None = None) -> ModelFacts:
    """The facts of the MusicGen in `folder`, or ModelError saying why it is not one TuneLab can use."""
    check_model_folder(folder)
    config = json_file(folder / "config.json")
    if config.get("model_type") != "musicgen":
        found = config.get("model_type")
        raise ModelError(f"config.json describes a {found!r} model, not MusicGen (model_type 'musicgen')")
    decoder, codec = config.get("decoder"), config.get("audio_encoder")
    if not isinstance(decoder, dict) or not isinstance(codec, dict):
        raise ModelError("config.json has no decoder or audio_encoder section")
    if decoder.get("audio_channels", 1) != 1:
        raise ModelError("this is a stereo MusicGen; only mono checkpoints are supported")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelError(f"the folder has no tokenizer ({' or '.join(_TOKENIZER_FILES)}): save the processor too")
    if not any((folder / name).is_file() for name in _FEATURE_FILES):
        raise ModelError(f"the folder has no feature extractor ({' or '.join(_FEATURE_FILES)}): save the processor too")
    try:
        sample_rate = int(codec["sampling_rate"])
        hop = math.prod(int(r) for r in codec["upsampling_ratios"])
        frame_rate = math.ceil(sample_rate / hop)
        num_codebooks = int(decoder["num_codebooks"])
        positions = int(decoder["max_position_embeddings"])
        facts = {key: decoder[key] for key in _DECODER_FACTS if key in decoder}
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"config.json lacks a MusicGen setting: {error}") from None
    tensors: dict[str, list[int]] = {}
    for weights in sorted(folder.glob("*.safetensors")):
        tensors |= {name: shape for name, (_, shape) in read_header(weights).items() if name.startswith("decoder.")}
    if not tensors:
        raise ModelError("the safetensors weights hold no decoder tensors")
    longest = min(LONGEST_CLIP_S, positions / frame_rate)
    if max_duration_s is not None:
        if not 0 < max_duration_s <= longest:
            raise ModelError(f"max duration {max_duration_s} s is outside what this model can make (0–{longest:g} s)")
        longest = max_duration_s
    identity = json.dumps({"decoder": facts, "tensors": sorted(tensors.items())}, sort_keys=True)
    return ModelFacts(sample_rate=sample_rate, frame_rate=frame_rate, num_codebooks=num_codebooks,
                      max_duration_s=round(longest, 3), fingerprint=hashlib.sha256(identity.encode()).hexdigest(),
                      config=config)  # fmt: skip


def content_sha256(folder: Path) -> tuple[str, int]:
    """sha256 over the folder's files (name and bytes, in name order) and their total size: the base model artifact's
    identity, so the same weights registered twice are the same artifact."""
    digest = hashlib.sha256()
    size = 0
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    return digest.hexdigest(), size
