"""Datasets: create, upload items (decoded before anything is kept), delete, export as the training JSONL, the demo
dataset, and bad input that leaves nothing behind."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tunelab.training.data import read_dataset


def clip(seconds: float = 0.5, rate: int = 16_000, fmt: str = "WAV", frequency: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    soundfile.write(out, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate, format=fmt)
    return out.getvalue()


@pytest.fixture
def data_dir(app) -> Path:
    return Path(app.state.settings.data_dir)


def dataset(client, name: str = "clips", kind: str = "supervised") -> dict:
    response = client.post("/api/datasets", json={"name": name, "type": kind})
    assert response.status_code == 201, response.text
    return response.json()


def upload(client, dataset_id: str, files: dict[str, tuple[str, bytes]], **fields: str):
    return client.post(f"/api/datasets/{dataset_id}/items", data=fields,
                       files={side: (name, body) for side, (name, body) in files.items()})  # fmt: skip


def kept_audio(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "audio").iterdir() if p.is_file())


def test_create_list_and_show_datasets(client, api) -> None:
    created = dataset(client, "  lofi  ")
    assert (created["name"], created["type"], created["item_count"], created["total_duration_s"]) == (
        "lofi", "supervised", 0, 0.0)  # fmt: skip
    api.error(client.post("/api/datasets", json={"name": "lofi", "type": "preference"}), 409, "dataset_name_taken")
    api.error(client.post("/api/datasets", json={"name": "x", "type": "other"}), 422, "validation_error")
    pairs = dataset(client, "pairs", "preference")
    assert [d["id"] for d in api.get("/api/datasets")["items"]] == [pairs["id"], created["id"]]
    assert api.get(f"/api/datasets/{created['id']}") == {**created, "items": []}
    api.error(client.get("/api/datasets/ds-nope"), 404, "dataset_not_found")


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_an_uploaded_clip_is_kept_under_a_generated_id_and_served_back(client, api, data_dir: Path, fmt: str) -> None:
    ds = dataset(client)
    body = clip(0.75, fmt=fmt)
    response = upload(client, ds["id"], {"audio": (f"../../my song.{fmt.lower()}", body)}, prompt=" warm pad ",
                      rating="4")  # fmt: skip
    assert response.status_code == 201, response.text
    item = response.json()
    assert (item["prompt"], item["rating"], item["source"], item["chosen_audio_id"]) == ("warm pad", 4, "upload", None)
    assert item["duration_s"] == pytest.approx(0.75)
    assert kept_audio(data_dir) == [f"{item['audio_id']}.{fmt.lower()}"]  # never the name the user gave
    served = client.get(f"/api/audio/{item['audio_id']}")
    assert served.status_code == 200 and served.content == body
    assert served.headers["content-type"] == {"WAV": "audio/wav", "FLAC": "audio/flac", "OGG": "audio/ogg"}[fmt]
    shown = api.get(f"/api/datasets/{ds['id']}")
    assert (shown["item_count"], shown["items"]) == (1, [item])
    assert shown["total_duration_s"] == pytest.approx(0.75)


def test_a_preference_item_takes_both_clips(client, api) -> None:
    ds = dataset(client, "pairs", "preference")
    response = upload(client, ds["id"], {"chosen": ("a.wav", clip(0.5)), "rejected": ("b.flac", clip(0.25, fmt="FLAC"))},
                      prompt="bright")  # fmt: skip
    assert response.status_code == 201, response.text
    item = response.json()
    assert item["rating"] is None and item["audio_id"] is None
    assert item["chosen_audio_id"] != item["rejected_audio_id"] and item["duration_s"] == pytest.approx(0.75)
    error = api.error(upload(client, ds["id"], {"chosen": ("a.wav", clip())}, prompt="x"), 422, "invalid_item")
    assert error["details"]["missing"] == ["rejected"]


@pytest.mark.parametrize(
    ("files", "fields", "code", "says"),
    [
        ({"audio": ("notes.txt", b"not audio at all, just text" * 10)}, {"prompt": "p", "rating": "3"},
         "invalid_audio", "not an audio file"),
        ({"audio": ("empty.wav", b"")}, {"prompt": "p", "rating": "3"}, "invalid_audio", "empty"),
        ({"audio": ("cut.wav", clip(1.0)[:30])}, {"prompt": "p", "rating": "3"}, "invalid_audio", ""),
        ({"audio": ("long.wav", clip(121, rate=8000))}, {"prompt": "p", "rating": "3"}, "invalid_audio", "longer"),
        ({"audio": ("a.wav", clip())}, {"prompt": "p", "rating": "6"}, "invalid_item", "rating"),
        ({"audio": ("a.wav", clip())}, {"prompt": "p"}, "invalid_item", "rating"),
        ({"audio": ("a.wav", clip())}, {"prompt": "   ", "rating": "2"}, "invalid_item", "prompt"),
        ({}, {"prompt": "p", "rating": "2"}, "invalid_item", "clip"),
    ],
)  # fmt: skip
def test_bad_items_are_refused_and_leave_nothing_behind(client, api, data_dir: Path, files, fields, code, says) -> None:
    ds = dataset(client)
    error = api.error(upload(client, ds["id"], files, **fields), 422, code)
    assert says in error["message"]
    assert kept_audio(data_dir) == []
    incoming = data_dir / "audio" / ".incoming"
    assert not incoming.exists() or not any(incoming.iterdir())
    assert api.get(f"/api/datasets/{ds['id']}")["item_count"] == 0


def test_a_file_past_the_size_limit_is_413_and_nothing_kept(client, api, data_dir: Path, monkeypatch) -> None:
    from tunelab.services import audio

    monkeypatch.setattr(audio, "MAX_AUDIO_BYTES", 10_000)  # the limit's logic, without a 50 MB upload
    ds = dataset(client, "pairs", "preference")
    error = api.error(upload(client, ds["id"], {"chosen": ("a.wav", clip(0.1)), "rejected": ("b.wav", clip(2.0))},
                             prompt="p"), 413, "file_too_large")  # fmt: skip
    assert error["details"] == {"field": "rejected", "max_bytes": 10_000}
    assert kept_audio(data_dir) == []  # the chosen clip, kept first, was removed too


def test_deleting_an_item_keeps_its_audio(client, api, data_dir: Path) -> None:
    ds = dataset(client)
    first = upload(client, ds["id"], {"audio": ("a.wav", clip())}, prompt="a", rating="5").json()
    upload(client, ds["id"], {"audio": ("b.wav", clip())}, prompt="b", rating="1")
    after = client.delete(f"/api/datasets/{ds['id']}/items/{first['id']}")
    assert after.status_code == 200 and after.json()["item_count"] == 1
    assert [i["prompt"] for i in api.get(f"/api/datasets/{ds['id']}")["items"]] == ["b"]
    assert len(kept_audio(data_dir)) == 2 and client.get(f"/api/audio/{first['audio_id']}").status_code == 200
    api.error(client.delete(f"/api/datasets/{ds['id']}/items/{first['id']}"), 404, "item_not_found")


def test_export_writes_the_training_jsonl_and_the_same_content_is_the_same_artifact(client, api, data_dir) -> None:
    ds = dataset(client)
    api.error(client.post(f"/api/datasets/{ds['id']}/export"), 422, "dataset_empty")
    for prompt, rating in (("calm", "2"), ("bright", "5")):
        upload(client, ds["id"], {"audio": (f"{prompt}.wav", clip())}, prompt=prompt, rating=rating)
    first = client.post(f"/api/datasets/{ds['id']}/export")
    assert first.status_code == 201, first.text
    artifact = first.json()
    assert artifact["type"] == "dataset_export" and artifact["metadata"]["items"] == 2
    frozen = Path(artifact["uri"])
    assert frozen.parent == data_dir / "exports" / ds["id"]
    assert (frozen.parent / "data.jsonl").read_bytes() == frozen.read_bytes()
    lines = [json.loads(line) for line in frozen.read_text().splitlines()]
    assert [(line["prompt"], line["rating"]) for line in lines] == [("calm", 2), ("bright", 5)]
    assert all(Path(line["audio_path"]).is_absolute() and Path(line["audio_path"]).is_file() for line in lines)
    examples = read_dataset(frozen, "supervised")  # what the training command will read
    assert [e.prompt for e in examples] == ["calm", "bright"]

    assert client.post(f"/api/datasets/{ds['id']}/export").json()["id"] == artifact["id"]
    upload(client, ds["id"], {"audio": ("c.wav", clip())}, prompt="third", rating="3")
    newer = client.post(f"/api/datasets/{ds['id']}/export").json()
    assert newer["id"] != artifact["id"] and newer["sha256"] != artifact["sha256"]
    assert frozen.exists() and len(frozen.read_text().splitlines()) == 2  # the older export is left as it was


def test_the_demo_dataset_holds_melodies_a_run_can_train_on(client, api) -> None:
    response = client.post("/api/datasets/demo")
    assert response.status_code == 201, response.text
    demo = response.json()
    assert (demo["name"], demo["type"], demo["item_count"]) == ("Demo melodies", "supervised", 8)
    assert demo["total_duration_s"] == pytest.approx(16.0)
    items = api.get(f"/api/datasets/{demo['id']}")["items"]
    assert {i["source"] for i in items} == {"demo"} and {i["rating"] for i in items} == {1, 2, 3, 4, 5}
    assert client.post("/api/datasets/demo").json()["name"] == "Demo melodies 2"
    export = client.post(f"/api/datasets/{demo['id']}/export").json()
    assert len(read_dataset(Path(export["uri"]), "supervised")) == 8
