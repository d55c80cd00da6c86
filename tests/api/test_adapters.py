"""The adapter registry over HTTP: registration with validation of real adapter folders (from a tiny-model training
run) and hand-broken ones, listing, detail and compatibility, activation with its history and roll back, rename,
soft delete, the version timeline, comparison and diff."""

from __future__ import annotations

import io
import json
import shutil
import struct
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from safetensors.numpy import load_file, save_file

from tunelab.app import create_app
from tunelab.config import Settings
from tunelab.domain.adapters import AdapterCreate, AdapterSource
from tunelab.errors import BadRequest, NotFound
from tunelab.services import Services

from .conftest import TEST_HOST, Api


class Registry:
    """A studio with the tiny MusicGen registered as `tiny` (current) and adapter folders under its data dir."""

    def __init__(self, client: TestClient, data: Path, trained: Path):
        self.client, self.data, self.trained = client, data, trained
        self.api = Api(client)

    @property
    def services(self) -> Services:
        services: Services = self.client.app.state.services  # type: ignore[attr-defined]
        return services

    def folder(self, name: str) -> Path:
        """A copy of the trained adapter under adapters/outside/`name`."""
        target = self.data / "adapters" / "outside" / name
        shutil.copytree(self.trained / "final", target)
        return target

    def register(self, name: str = "lofi", version: str = "1.0", folder: Path | None = None, **body: Any) -> Any:
        path = folder or self.folder(f"{name}-{version}-{time.monotonic_ns()}")
        body = {"name": name, "version": version, "path": str(path), "base_model_id": "tiny", **body}
        return self.client.post("/api/adapters", json=body)

    def adapter(self, name: str = "lofi", version: str = "1.0", **body: Any) -> dict[str, Any]:
        response = self.register(name, version, **body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def with_metrics(self, name: str, version: str, metrics: dict[str, float], config: dict[str, Any]) -> str:
        """An adapter registered through the service with training metrics (as a run's adapter has)."""
        folder = self.folder(f"{name}-{version}")
        data = AdapterCreate(name=name, version=version, path=str(folder), base_model_id="tiny", training_config=config)
        return self.services.adapters.register(data, AdapterSource.REGISTERED, metrics).id

    def add_model(self, model_id: str) -> None:
        """Another registered base model: a copy of the tiny one (same shapes, other weights as far as we know)."""
        shutil.copytree(self.data / "models" / "tiny", self.data / "models" / model_id)
        assert self.client.post("/api/models", json={"path": str(self.data / "models" / model_id),
                                                     "id": model_id}).status_code == 201  # fmt: skip


@pytest.fixture
def registry(tmp_path: Path, tiny_model: Path, trained_adapter: Path) -> Iterator[Registry]:
    data = tmp_path / "data"
    app = create_app(Settings(data_dir=data, allowed_hosts=[TEST_HOST], bootstrap_model=False))
    shutil.copytree(tiny_model, data / "models" / "tiny")
    with TestClient(app) as client:
        body = {"path": str(data / "models" / "tiny"), "id": "tiny", "display_name": "Tiny MusicGen"}
        assert client.post("/api/models", json=body).status_code == 201
        yield Registry(client, data, trained_adapter)


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    return Api.error(response, status, code)


# --- registration --------------------------------------------------------------------------------------------------


def test_a_trained_adapter_registers_inactive_with_its_base_model_and_lora_facts(registry: Registry) -> None:
    adapter = registry.adapter("lofi", "1.0", description="warm tape hiss")

    assert adapter["id"].startswith("adp-") and adapter["active"] is False
    assert adapter["base_model"] == {"id": "tiny", "display_name": "Tiny MusicGen",
                                     "max_duration_s": adapter["base_model"]["max_duration_s"], "sample_rate": 32000}  # fmt: skip
    assert adapter["base_model"]["max_duration_s"] > 0
    assert adapter["lora"]["r"] == 16 and adapter["lora"]["target_modules"] == ["k_proj", "out_proj", "q_proj",
                                                                                 "v_proj"]  # fmt: skip
    assert adapter["compatible"] is True and adapter["compatibility"]["reason"] is None
    assert adapter["provenance"]["source"] == "registered" and adapter["provenance"]["run_id"] is None
    assert "outside TuneLab" in adapter["provenance"]["note"]
    assert adapter["configuration"] is None  # no training config given
    assert registry.api.get(f"/api/adapters/{adapter['id']}")["description"] == "warm tape hiss"


def test_the_base_model_comes_from_the_adapter_config_when_not_given(registry: Registry) -> None:
    folder = registry.folder("named")
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "tiny"}))
    body = {"name": "named", "version": "1", "path": str(folder)}
    assert registry.client.post("/api/adapters", json=body).json()["base_model_id"] == "tiny"

    (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "facebook/big"}))
    found = error(registry.client.post("/api/adapters", json={**body, "version": "2"}), 422, "base_model_required")
    assert found["details"]["named"] == "facebook/big" and "give base_model_id" in found["message"]
    error(registry.register("named", "3", base_model_id="no-such-model"), 422, "model_not_found")


def test_paths_outside_the_data_dir_and_import_roots_are_refused_symlinks_resolved(
    registry: Registry, tmp_path: Path, trained_adapter: Path
) -> None:
    outside = tmp_path / "elsewhere"
    shutil.copytree(trained_adapter / "final", outside)
    error(registry.register(folder=outside), 422, "path_not_allowed")
    link = registry.data / "adapters" / "link"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    error(registry.register(folder=link), 422, "path_not_allowed")
    error(registry.register(folder=registry.data / "adapters" / "missing"), 422, "path_not_found")
    assert registry.api.get("/api/adapters")["total"] == 0


def _rewrite(folder: Path, change: Any) -> None:
    tensors = load_file(folder / "adapter_model.safetensors")
    save_file(change(tensors), folder / "adapter_model.safetensors")


def _break_missing_config(folder: Path) -> None:
    (folder / "adapter_config.json").unlink()


def _break_pickle(folder: Path) -> None:
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")


def _break_rank(folder: Path) -> None:
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "r": 8}))


def _break_shapes(folder: Path) -> None:
    # What an adapter made for a wider model looks like: every projection 96 wide instead of 64.
    def widen(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: np.zeros((16, 96) if "lora_A" in name else (96, 16), np.float32) for name in tensors}

    _rewrite(folder, widen)


def _break_header_length(folder: Path) -> None:
    path = folder / "adapter_model.safetensors"
    raw = bytearray(path.read_bytes())
    (length,) = struct.unpack("<Q", raw[:8])
    raw[:8] = struct.pack("<Q", length + len(raw))  # the header claims more bytes than the file has
    path.write_bytes(bytes(raw))


def _break_data_length(folder: Path) -> None:
    path = folder / "adapter_model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])  # cut short: the header describes more data than there is


def _break_lone_matrix(folder: Path) -> None:
    _rewrite(folder, lambda tensors: {k: v for k, v in tensors.items() if not k.endswith("q_proj.lora_B.weight")})


def _break_not_lora(folder: Path) -> None:
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "IA3"}))


def _break_foreign_tensor(folder: Path) -> None:
    _rewrite(folder, lambda tensors: {**tensors, "base_model.model.lm_heads.0.weight": np.zeros((4, 4), np.float32)})


@pytest.mark.parametrize(
    ("breaks", "reason"),
    [
        (_break_missing_config, "no adapter_config.json"),
        (_break_pickle, "pickle files (adapter_model.bin)"),
        (_break_rank, "has rank 16, but adapter_config.json says r = 8"),
        (_break_shapes, "does not fit base model Tiny MusicGen"),
        (_break_header_length, "its header says"),
        (_break_data_length, "not a whole safetensors file"),
        (_break_lone_matrix, "has a LoRA A matrix but no B"),
        (_break_not_lora, "'IA3' adapter, not LoRA"),
        (_break_foreign_tensor, "is not a LoRA A or B matrix"),
    ],
)
def test_broken_adapters_are_refused_with_the_reason_and_nothing_is_written(
    registry: Registry, breaks: Any, reason: str
) -> None:
    folder = registry.folder("broken")
    breaks(folder)
    found = error(registry.register("broken", "1", folder=folder), 422, "invalid_adapter")
    assert reason in found["details"]["reason"], found
    assert registry.api.get("/api/adapters")["total"] == 0


def test_a_taken_name_and_version_is_a_conflict_that_suggests_the_next_version(registry: Registry) -> None:
    registry.adapter("lofi", "1.2")
    registry.adapter("lofi", "1.3")
    found = error(registry.register("lofi", "1.2"), 409, "adapter_version_exists")
    assert found["details"]["suggested_version"] == "1.4"
    registry.adapter("daily", "2026.11.22.1")
    found = error(registry.register("daily", "2026.11.22.1"), 409, "adapter_version_exists")
    assert found["details"]["suggested_version"] == "2026.11.22.2"
    registry.adapter("other", "1.2")  # the same version under another name is fine


def test_a_deleted_adapter_leaves_listings_keeps_its_files_and_frees_its_version(registry: Registry) -> None:
    adapter = registry.adapter("lofi", "1.0")
    deleted = registry.client.delete(f"/api/adapters/{adapter['id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted_at"] is not None
    assert Path(adapter["storage_path"], "adapter_model.safetensors").is_file()
    assert registry.api.get("/api/adapters")["total"] == 0
    error(registry.client.get(f"/api/adapters/{adapter['id']}"), 404, "adapter_not_found")
    error(registry.client.delete(f"/api/adapters/{adapter['id']}"), 404, "adapter_not_found")
    error(registry.client.delete("/api/adapters/adp-missing"), 404, "adapter_not_found")
    error(registry.client.post(f"/api/adapters/{adapter['id']}/activate"), 404, "adapter_not_found")
    assert registry.adapter("lofi", "1.0")["id"] != adapter["id"]


# --- listing, detail, compatibility ----------------------------------------------------------------------------------


def test_listing_filters_pages_and_groups_versions_by_name(registry: Registry) -> None:
    first = registry.adapter("lofi", "1.0", description="tape")
    registry.adapter("lofi", "1.1")
    jazz = registry.adapter("jazz", "0.1")
    registry.client.post(f"/api/adapters/{jazz['id']}/activate")

    listing = registry.api.get("/api/adapters")
    assert [(i["name"], i["version"]) for i in listing["items"]] == [("jazz", "0.1"), ("lofi", "1.1"), ("lofi", "1.0")]
    assert all(i["base_model"]["display_name"] == "Tiny MusicGen" and i["compatible"] for i in listing["items"])
    assert [i["id"] for i in registry.api.get("/api/adapters", active="true")["items"]] == [jazz["id"]]
    assert len(registry.api.get("/api/adapters", active="false")["items"]) == 2
    assert [i["id"] for i in registry.api.get("/api/adapters", q="TAPE")["items"]] == [first["id"]]
    assert registry.api.get("/api/adapters", base_model_id="other")["total"] == 0
    paged = registry.api.get("/api/adapters", page=2, page_size=2)
    assert paged["total"] == 3 and [i["id"] for i in paged["items"]] == [first["id"]]

    grouped = registry.api.get("/api/adapters", group_by_name="true")
    assert [g["name"] for g in grouped["items"]] == ["jazz", "lofi"] and grouped["total"] == 2
    assert [v["version"] for v in grouped["items"][1]["versions"]] == ["1.0", "1.1"]  # oldest first


def test_compatibility_follows_the_current_model_with_the_reason(registry: Registry) -> None:
    adapter = registry.adapter("lofi", "1.0")
    registry.add_model("tiny-b")
    assert registry.client.patch("/api/settings", json={"current_model_id": "tiny-b"}).status_code == 200

    detail = registry.api.get(f"/api/adapters/{adapter['id']}")
    assert detail["compatible"] is False
    assert detail["compatibility"]["reason"] == "Requires Tiny MusicGen; the current model is tiny-b."
    assert registry.api.get("/api/adapters")["items"][0]["compatible"] is False

    other = registry.adapter("bright", "1", base_model_id="tiny-b")
    refused = error(registry.client.post(f"/api/adapters/{adapter['id']}/activate"), 409, "adapter_incompatible")
    assert refused["details"]["compatible_adapters"] == [{"id": other["id"], "name": "bright", "version": "1",
                                                          "active": False}]  # fmt: skip
    assert registry.client.post(f"/api/adapters/{other['id']}/activate").json()["active"] is True


def test_files_that_no_longer_fit_make_an_adapter_incompatible_and_unactivatable(registry: Registry) -> None:
    adapter = registry.adapter("lofi", "1.0")
    _break_shapes(Path(adapter["storage_path"]))
    detail = registry.api.get(f"/api/adapters/{adapter['id']}")
    assert detail["compatible"] is False and "does not fit the current model" in detail["compatibility"]["reason"]
    error(registry.client.post(f"/api/adapters/{adapter['id']}/activate"), 409, "adapter_incompatible")


# --- lifecycle -------------------------------------------------------------------------------------------------------


def test_one_version_of_a_name_is_active_and_the_history_allows_a_roll_back(registry: Registry) -> None:
    v1, v2 = registry.adapter("lofi", "1.0"), registry.adapter("lofi", "1.1")
    other = registry.adapter("jazz", "1.0")
    error(registry.client.post("/api/adapters/rollback", json={"name": "lofi"}), 409, "nothing_to_roll_back")
    for adapter in (v1, other, v2):
        assert registry.client.post(f"/api/adapters/{adapter['id']}/activate").json()["active"] is True

    active = {i["id"] for i in registry.api.get("/api/adapters", active="true")["items"]}
    assert active == {v2["id"], other["id"]}  # activating 1.1 retired 1.0; jazz is another name
    timeline = registry.api.get("/api/adapters/versions", name="lofi")
    periods = {v["version"]: v["active_periods"] for v in timeline["versions"]}
    assert len(periods["1.0"]) == 1 and periods["1.0"][0]["end"] is not None
    assert len(periods["1.1"]) == 1 and periods["1.1"][0]["end"] is None
    assert timeline["roll_back_to"] == v1["id"]
    assert [e["event"] for e in timeline["history"]][:3] == ["activated", "deactivated", "activated"]

    rolled = registry.client.post("/api/adapters/rollback", json={"name": "lofi"})
    assert rolled.status_code == 200 and rolled.json()["id"] == v1["id"] and rolled.json()["active"] is True
    assert registry.api.get(f"/api/adapters/{v2['id']}")["active"] is False
    assert registry.api.get("/api/adapters/versions", name="lofi")["roll_back_to"] == v2["id"]

    deactivated = registry.client.post(f"/api/adapters/{v1['id']}/deactivate")
    assert deactivated.status_code == 200 and deactivated.json()["active"] is False
    error(registry.client.post("/api/adapters/rollback", json={"name": "nobody"}), 404, "adapter_not_found")


def test_rename_strips_validates_length_moves_updated_at_and_refuses_a_taken_version(registry: Registry) -> None:
    adapter = registry.adapter("lofi", "1.0")
    registry.adapter("jazz", "1.0")
    renamed = registry.client.patch(f"/api/adapters/{adapter['id']}", json={"name": "  lofi tape  "})
    assert renamed.status_code == 200 and renamed.json()["name"] == "lofi tape"
    assert renamed.json()["updated_at"] > adapter["updated_at"]
    assert registry.api.get("/api/adapters")["items"][1]["name"] == "lofi tape"
    for bad in ("", "   ", "x" * 101):
        error(registry.client.patch(f"/api/adapters/{adapter['id']}", json={"name": bad}), 422, "validation_error")
    assert registry.client.patch(f"/api/adapters/{adapter['id']}", json={"name": "x" * 100}).status_code == 200
    found = error(registry.client.patch(f"/api/adapters/{adapter['id']}", json={"name": "jazz"}), 409,
                  "adapter_version_exists")  # fmt: skip
    assert found["details"]["suggested_version"] == "1.1"
    described = registry.client.patch(f"/api/adapters/{adapter['id']}", json={"description": "new words"})
    assert described.json()["description"] == "new words"
    error(registry.client.patch("/api/adapters/adp-missing", json={"name": "a"}), 404, "adapter_not_found")


# --- comparison -----------------------------------------------------------------------------------------------------


def test_compare_and_diff_put_metrics_and_configs_side_by_side(registry: Registry) -> None:
    config = {"training_type": "preference", "hyperparameters": {"learning_rate": 1e-4, "lora_r": 16, "beta": 0.1},
              "created_at": "2026-12-01T10:00:00+00:00", "dataset": {"path": "/a.jsonl"}}  # fmt: skip
    a = registry.with_metrics("dpo", "1", {"final_loss": 0.7, "best_eval_loss": 0.8, "reward_accuracy": 0.6,
                                           "reward_margin": 0.2}, config)  # fmt: skip
    changed = {**config, "hyperparameters": {**config["hyperparameters"], "learning_rate": 5e-5},
               "created_at": "2026-12-02T10:00:00+00:00", "dataset": {"path": "/b.jsonl"}}  # fmt: skip
    b = registry.with_metrics("dpo", "2", {"final_loss": 0.5, "best_eval_loss": 0.9, "reward_accuracy": 0.7,
                                           "reward_margin": 0.1}, changed)  # fmt: skip

    compared = registry.api.get("/api/adapters/compare", ids=f"{a},{b}")
    best = {key: entry["best_id"] for key, entry in compared["metrics"].items()}
    assert best == {"final_loss": b, "best_eval_loss": a, "reward_accuracy": b, "reward_margin": a}
    assert compared["differing"] == ["hyperparameters.learning_rate"]  # when and on which file: not options
    assert "created_at" not in compared["config"] and "dataset.path" not in compared["config"]
    assert compared["config"]["hyperparameters.lora_r"] == {a: 16, b: 16}

    diff = registry.api.get("/api/adapters/diff", a=a, b=b)
    assert diff["config"] == {"hyperparameters.learning_rate": {"a": 1e-4, "b": 5e-5}}
    assert diff["metrics"]["final_loss"]["better"] == "b" and diff["metrics"]["final_loss"]["delta"] == pytest.approx(
        -0.2
    )
    assert diff["base_model"] == {"a": "tiny", "b": "tiny"}

    detail = registry.api.get(f"/api/adapters/{a}")
    groups = [group["name"] for group in detail["configuration"]]
    assert groups == ["Model", "LoRA", "Training", "Hardware", "Checkpointing", "DPO"]
    rate = next(e for g in detail["configuration"] for e in g["entries"] if e["label"] == "Learning rate")
    assert rate["display"] == "1e-4" and "Typical" in rate["help"]

    many = ",".join(f"adp-{n}" for n in range(11))
    error(registry.client.get("/api/adapters/compare", params={"ids": many}), 422, "invalid_compare")
    assert registry.api.get("/api/adapters/diff", a=a, b=a)["config"] == {}  # an adapter against itself
    error(registry.client.get("/api/adapters/compare", params={"ids": f"{a},adp-nope"}), 404, "adapter_not_found")


# --- export and import -----------------------------------------------------------------------------------------------


def test_an_exported_adapter_is_a_peft_folder_with_a_model_card_and_imports_back(registry: Registry) -> None:
    config = json.loads((registry.trained / "training_config.json").read_text())
    adapter_id = registry.with_metrics("lofi", "1.2", {"final_loss": 1.5, "best_eval_loss": 1.25}, config)
    response = registry.client.get(f"/api/adapters/{adapter_id}/export")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert 'filename="lofi-1.2.zip"' in response.headers["content-disposition"]

    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = sorted(archive.namelist())
        card = archive.read("lofi-1.2/README.md").decode()
        weights = archive.read("lofi-1.2/adapter_model.safetensors")
    assert names == [f"lofi-1.2/{n}" for n in ("README.md", "adapter_config.json", "adapter_model.safetensors",
                                                 "training_config.json", "tunelab.json")]  # fmt: skip
    front = card.split("---")[1]
    assert 'base_model: "tiny"' in front and "base_model_relation: adapter" in front and "library_name: peft" in front
    assert "| LoRA | Rank (r) | 16 |" in card and "| best_eval_loss | 1.25 |" in card
    assert weights == (registry.trained / "final" / "adapter_model.safetensors").read_bytes()

    files = {"archive": ("lofi-1.2.zip", response.content, "application/zip")}
    taken = registry.client.post("/api/adapters/import", files=files)
    assert error(taken, 409, "adapter_version_exists")["details"]["suggested_version"] == "1.3"
    imported = registry.client.post("/api/adapters/import", files=files, data={"version": "1.3"})
    assert imported.status_code == 201, imported.text
    body = imported.json()
    assert (body["name"], body["version"], body["source"]) == ("lofi", "1.3", "imported")
    assert body["metrics"] == {"final_loss": 1.5, "best_eval_loss": 1.25} and body["base_model_id"] == "tiny"
    assert body["training_config"] == config and body["lora"]["r"] == 16
    assert Path(body["storage_path"]).is_relative_to(registry.data / "adapters" / "imported")
    assert len(list((registry.data / "adapters" / "imported").iterdir())) == 1  # the refused import left nothing


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_imports_that_are_not_exported_adapters_are_refused_and_leave_nothing(registry: Registry) -> None:
    final = registry.trained / "final"
    config, weights = (final / "adapter_config.json").read_bytes(), (final / "adapter_model.safetensors").read_bytes()
    cases = {
        b"not a zip at all": "not a zip archive",
        _zip({"a/adapter_config.json": config, "a/adapter_model.bin": b"\x80\x04pickle"}): "pickle weights",
        _zip({"../../evil/adapter_config.json": config, "../../evil/adapter_model.safetensors": weights}): "no PEFT",
        _zip({"readme.txt": b"hello"}): "no PEFT adapter",
    }
    for content, reason in cases.items():
        found = error(registry.client.post("/api/adapters/import", files={"archive": ("x.zip", content)}), 422,
                      "invalid_archive")  # fmt: skip
        assert reason in found["message"], found
    # A plain PEFT zip without TuneLab's record needs a name and version, and then registers.
    plain = _zip({"adapter_config.json": config, "adapter_model.safetensors": weights})
    error(registry.client.post("/api/adapters/import", files={"archive": ("p.zip", plain)}), 422, "name_required")
    done = registry.client.post("/api/adapters/import", files={"archive": ("p.zip", plain)},
                                data={"name": "plain", "version": "1", "base_model_id": "tiny"})  # fmt: skip
    assert done.status_code == 201, done.text
    assert len(list((registry.data / "adapters" / "imported").iterdir())) == 1
    assert not (registry.data.parent / "evil").exists() and not (registry.data / "evil").exists()


def test_what_generation_may_use_is_checked_again_when_it_is_loaded(registry: Registry) -> None:
    adapters = registry.services.adapters
    adapter = registry.adapter("lofi", "1.0")
    with pytest.raises(BadRequest) as inactive:
        adapters.usable(adapter["id"])
    assert inactive.value.code == "adapter_inactive"
    registry.client.post(f"/api/adapters/{adapter['id']}/activate")
    assert adapters.usable(adapter["id"]).id == adapter["id"]

    _break_shapes(Path(adapter["storage_path"]))  # the files changed under it after activation
    with pytest.raises(BadRequest) as misfit:
        adapters.usable(adapter["id"])
    assert misfit.value.code == "adapter_incompatible" and "does not fit" in misfit.value.details["reason"]

    registry.client.delete(f"/api/adapters/{adapter['id']}")
    with pytest.raises(BadRequest) as deleted:
        adapters.usable(adapter["id"])
    assert deleted.value.code == "adapter_deleted"
    with pytest.raises(NotFound):
        adapters.usable("adp-never")
