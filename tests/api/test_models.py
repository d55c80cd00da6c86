"""Base models and settings: register a MusicGen folder (checked without loading it), list, pick the current one,
and the tiny model a fresh data dir makes for itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tunelab.app import create_app
from tunelab.config import Settings


@pytest.fixture
def model_dir(app, tiny_model: Path) -> Path:
    """A copy of the tiny model inside the app's data dir."""
    target = app.state.settings.data_dir / "models" / "my-tiny"
    shutil.copytree(tiny_model, target)
    return target


def test_a_data_dir_without_models_lists_none(client, api) -> None:
    assert api.get("/api/models")["items"] == []
    assert api.get("/api/settings") == {"current_model_id": None}


def test_a_registered_folder_is_described_and_the_first_becomes_current(client, api, model_dir: Path) -> None:
    response = client.post("/api/models", json={"path": str(model_dir), "display_name": "  Mine  "})
    assert response.status_code == 201, response.text
    model = response.json()
    assert (model["id"], model["display_name"], model["path"]) == ("my-tiny", "Mine", str(model_dir))
    assert (model["sample_rate"], model["frame_rate"], model["num_codebooks"]) == (32_000, 50, 4)
    # 512 decoder positions at 50 frames/s.
    assert model["max_duration_s"] == 10.24 and model["current"] is True
    artifact = api.get(f"/api/artifacts/{model['artifact_id']}")
    assert artifact["type"] == "base_model" and artifact["uri"] == str(model_dir)
    assert artifact["size"] == sum(p.stat().st_size for p in model_dir.iterdir())
    assert api.get("/api/settings") == {"current_model_id": "my-tiny"}
    assert api.get("/api/models")["items"] == [model] == [api.get("/api/models/my-tiny")]

    # The same files again under another id: a second model, the same artifact, and it is not made current.
    again = client.post("/api/models", json={"path": str(model_dir), "id": "copy", "max_duration_s": 5})
    assert again.status_code == 201
    assert (again.json()["artifact_id"], again.json()["current"], again.json()["max_duration_s"]) == (
        model["artifact_id"], False, 5.0)  # fmt: skip
    assert again.json()["fingerprint"] == model["fingerprint"]
    api.error(client.post("/api/models", json={"path": str(model_dir), "id": "copy"}), 409, "model_exists")
    api.error(client.post("/api/models", json={"path": str(model_dir), "id": "x", "max_duration_s": 60}), 422,
              "invalid_model")  # fmt: skip

    switched = client.patch("/api/settings", json={"current_model_id": "copy"})
    assert switched.json() == {"current_model_id": "copy"}
    assert [(m["id"], m["current"]) for m in api.get("/api/models")["items"]] == [("my-tiny", False), ("copy", True)]
    api.error(client.patch("/api/settings", json={"current_model_id": "nope"}), 422, "model_not_found")
    api.error(client.get("/api/models/nope"), 404, "model_not_found")


def test_paths_outside_the_data_dir_are_refused_symlinks_resolved(client, api, app, tiny_model: Path) -> None:
    api.error(client.post("/api/models", json={"path": str(tiny_model)}), 422, "path_not_allowed")
    link = app.state.settings.data_dir / "models" / "link"
    link.symlink_to(tiny_model)
    api.error(client.post("/api/models", json={"path": str(link)}), 422, "path_not_allowed")
    api.error(client.post("/api/models", json={"path": str(link.parent / "missing")}), 422, "path_not_found")
    assert api.get("/api/models")["items"] == []


def test_an_import_root_allows_a_folder_outside_the_data_dir(tmp_path: Path, tiny_model: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", allowed_hosts=["testserver"], import_roots=str(tiny_model.parent))
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/models", json={"path": str(tiny_model)})
        assert response.status_code == 201, response.text
        assert response.json()["id"] == "musicgen"


def broken(model_dir: Path, how: str) -> None:
    if how == "pickle":
        (model_dir / "model.safetensors").rename(model_dir / "pytorch_model.bin")
    elif how == "not_musicgen":
        config = json.loads((model_dir / "config.json").read_text())
        (model_dir / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    elif how == "no_tokenizer":
        (model_dir / "tokenizer.json").unlink()
    elif how == "bad_header":
        (model_dir / "model.safetensors").write_bytes(b"\xff" * 64)
    elif how == "stereo":
        config = json.loads((model_dir / "config.json").read_text())
        config["decoder"]["audio_channels"] = 2
        (model_dir / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("how", "reason"),
    [("pickle", "pickle weights"), ("not_musicgen", "not MusicGen"), ("no_tokenizer", "no tokenizer"),
     ("bad_header", "not a safetensors file"), ("stereo", "stereo")],
)  # fmt: skip
def test_a_folder_that_is_not_a_usable_musicgen_is_422_and_nothing_is_kept(
    client, api, model_dir: Path, how: str, reason: str
) -> None:
    broken(model_dir, how)
    error = api.error(client.post("/api/models", json={"path": str(model_dir)}), 422, "invalid_model")
    assert reason in error["details"]["reason"]
    assert api.get("/api/models")["items"] == [] and api.get("/api/settings")["current_model_id"] is None
    with client.app.state.services.db.read() as con:  # type: ignore[attr-defined]
        assert con.execute("SELECT count(*) FROM artifacts").fetchone() == (0,)


def test_a_hub_id_that_cannot_be_downloaded_is_422(client, api, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # no network here, and none in CI: fail at once
    error = api.error(client.post("/api/models", json={"path": "facebook/musicgen-small"}), 422, "invalid_model")
    assert "Hugging Face hub" in error["message"]


def test_a_fresh_data_dir_makes_the_tiny_model_current_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", allowed_hosts=["testserver"], bootstrap_model=True)
    with TestClient(create_app(settings)) as client:
        models = client.get("/api/models").json()["items"]
        assert [(m["id"], m["current"], m["display_name"]) for m in models] == [
            ("tiny-musicgen", True, "Tiny MusicGen (demo)")]  # fmt: skip
        assert models[0]["path"] == str(settings.data_dir / "models" / "tiny-musicgen")
    weights = settings.data_dir / "models" / "tiny-musicgen" / "model.safetensors"
    made = weights.stat().st_mtime_ns
    with TestClient(create_app(settings)) as client:  # a second start registers nothing and makes nothing
        assert [m["id"] for m in client.get("/api/models").json()["items"]] == ["tiny-musicgen"]
    assert weights.stat().st_mtime_ns == made
