"""The adapter registry's speed. Prints JSON:

- `validation`: checking a LoRA of musicgen-small size (r=16 on every decoder attention projection, self- and
  cross-attention: 192 modules, ~25 MB of float32) against a base model with musicgen-small's tensors (its
  safetensors header and a sparse 2.3 GB file, so the data is never read): p50/max of the registry's check as it
  runs on registration (`read_adapter` + `misfits`), with the base model's shapes read on each call (`cold`) and
  cached as the service keeps them (`warm`); target <= 50 ms, and torch is never imported (`torch_imported`).
- `listing`: the first page (50) of `GET /api/adapters` with 10,000 adapters registered, in process through the
  ASGI app (`http`) and the service call alone (`service`); also grouped by name; target <= 20 ms.

Run: .venv/bin/python bench/registry.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from tunelab.musicgen.describe import DTYPE_BYTES
from tunelab.musicgen.lora import base_tensors, misfits, read_adapter

HIDDEN, LAYERS, FFN, CODEBOOKS, VOCAB = 1024, 24, 4096, 4, 2048  # musicgen-small's decoder
T5_HIDDEN, T5_LAYERS, T5_FFN = 768, 12, 3072  # its text encoder (t5-base)
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def small_base_shapes() -> dict[str, list[int]]:
    """The tensors of musicgen-small by name and shape (decoder and text encoder; EnCodec's are few and small)."""
    shapes: dict[str, list[int]] = {}
    decoder = "decoder.model.decoder"
    for layer in range(LAYERS):
        prefix = f"{decoder}.layers.{layer}"
        for attention in ("self_attn", "encoder_attn"):
            for projection in PROJECTIONS:
                shapes[f"{prefix}.{attention}.{projection}.weight"] = [HIDDEN, HIDDEN]
            shapes[f"{prefix}.{attention}_layer_norm.weight"] = [HIDDEN]
            shapes[f"{prefix}.{attention}_layer_norm.bias"] = [HIDDEN]
        shapes[f"{prefix}.fc1.weight"] = [FFN, HIDDEN]
        shapes[f"{prefix}.fc2.weight"] = [HIDDEN, FFN]
        shapes[f"{prefix}.final_layer_norm.weight"] = [HIDDEN]
        shapes[f"{prefix}.final_layer_norm.bias"] = [HIDDEN]
    for codebook in range(CODEBOOKS):
        shapes[f"{decoder}.embed_tokens.{codebook}.weight"] = [VOCAB + 1, HIDDEN]
        shapes[f"decoder.lm_heads.{codebook}.weight"] = [VOCAB, HIDDEN]
    shapes["enc_to_dec_proj.weight"] = [HIDDEN, T5_HIDDEN]
    for layer in range(T5_LAYERS):
        prefix = f"text_encoder.encoder.block.{layer}.layer"
        for projection in "qkvo":
            shapes[f"{prefix}.0.SelfAttention.{projection}.weight"] = [T5_HIDDEN, T5_HIDDEN]
        shapes[f"{prefix}.1.DenseReluDense.wi.weight"] = [T5_FFN, T5_HIDDEN]
        shapes[f"{prefix}.1.DenseReluDense.wo.weight"] = [T5_HIDDEN, T5_FFN]
        shapes[f"{prefix}.0.layer_norm.weight"] = [T5_HIDDEN]
        shapes[f"{prefix}.1.layer_norm.weight"] = [T5_HIDDEN]
    shapes["text_encoder.shared.weight"] = [32128, T5_HIDDEN]
    return shapes


def write_sparse_safetensors(path: Path, shapes: dict[str, list[int]]) -> int:
    """A valid safetensors file of float32 zeros whose data is a hole: only the header is written."""
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in sorted(shapes.items()):
        size = int(np.prod(shape)) * DTYPE_BYTES["F32"]
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as file:
        file.write(len(raw).to_bytes(8, "little") + raw)
        file.truncate(8 + len(raw) + offset)
    return 8 + len(raw) + offset


def write_small_lora(folder: Path, rank: int = 16) -> int:
    folder.mkdir(parents=True)
    tensors = {}
    for layer in range(LAYERS):
        for attention in ("self_attn", "encoder_attn"):
            for projection in PROJECTIONS:
                module = f"base_model.model.decoder.model.decoder.layers.{layer}.{attention}.{projection}"
                tensors[f"{module}.lora_A.weight"] = np.zeros((rank, HIDDEN), np.float32)
                tensors[f"{module}.lora_B.weight"] = np.zeros((HIDDEN, rank), np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "base_model_name_or_path": "musicgen-small",
              "target_modules": list(PROJECTIONS), "rank_pattern": {}}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return (folder / "adapter_model.safetensors").stat().st_size


def timed(action: Callable[[], Any], repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(statistics.median(samples), 2), "max_ms": round(max(samples), 2)}


def bench_validation(root: Path, repeats: int) -> dict[str, Any]:
    base = root / "musicgen-small"
    base.mkdir()
    base_bytes = write_sparse_safetensors(base / "model.safetensors", small_base_shapes())
    adapter = root / "lora"
    adapter_bytes = write_small_lora(adapter)
    tensors = base_tensors(base)
    facts = read_adapter(adapter)
    assert misfits(facts, tensors) == [] and len(facts.modules) == 2 * len(PROJECTIONS) * LAYERS

    def cold() -> None:
        assert not misfits(read_adapter(adapter), base_tensors(base))

    def warm() -> None:
        assert not misfits(read_adapter(adapter), tensors)

    return {
        "adapter_mb": round(adapter_bytes / 1e6, 1), "modules": len(facts.modules), "base_model_gb": round(
            base_bytes / 1e9, 2), "base_tensors": len(tensors),
        "cold": timed(cold, repeats), "warm": timed(warm, repeats), "target_ms": 50,
        "torch_imported": "torch" in sys.modules,
    }  # fmt: skip


def bench_listing(root: Path, repeats: int, count: int = 10_000) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from tunelab.app import create_app
    from tunelab.config import Settings

    settings = Settings(data_dir=root / "data", allowed_hosts=["testserver"], bootstrap_model=False)
    app = create_app(settings)
    with TestClient(app) as client:
        db = app.state.services.db
        with db.transaction() as con:
            con.execute(
                """
                INSERT INTO adapters (id, name, version, base_model_id, storage_path, active, description,
                                      training_config, metrics, lora, source, created_at, updated_at)
                SELECT 'adp-bench' || i, 'adapter-' || (i % 2000), '1.' || (i // 2000), 'tiny', '/nowhere', i % 50 = 0,
                       'benchmark adapter ' || i, '{"hyperparameters": {"learning_rate": 0.0001, "lora_r": 16}}',
                       '{"final_loss": ' || (1 + i / 10000) || ', "best_eval_loss": 1.5}', '{"r": 16}', 'registered',
                       TIMESTAMP '2026-01-01' + INTERVAL (i) SECOND, TIMESTAMP '2026-01-01' + INTERVAL (i) SECOND
                FROM range(?) t(i)
                """,
                [count],
            )
        first = client.get("/api/adapters")
        assert first.status_code == 200 and first.json()["total"] == count and len(first.json()["items"]) == 50
        services = app.state.services
        return {
            "adapters": count,
            "http": timed(lambda: client.get("/api/adapters").raise_for_status(), repeats),
            "service": timed(lambda: services.adapters.list_page(), repeats),
            "active_only_http": timed(lambda: client.get("/api/adapters?active=true").raise_for_status(), repeats),
            "grouped_http": timed(lambda: client.get("/api/adapters?group_by_name=true").raise_for_status(), repeats),
            "search_http": timed(lambda: client.get("/api/adapters?q=adapter-19").raise_for_status(), repeats),
            "target_ms": 20,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        figures = {"validation": bench_validation(root, args.repeats)}
        figures["listing"] = bench_listing(root, args.repeats)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
