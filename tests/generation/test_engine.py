"""The generation engine in this process, on a copy of the tiny MusicGen and two copies of a trained LoRA adapter
(each with its own random change to its B matrices, so that the two adapters and the base model all differ).

A clip is compared by the audio codes the model drew (recorded on their way to the audio decoder) and by its
samples: a request must draw the same codes alone, twice, or inside any batch (other prompts, seeds, adapters, the
base model, with and without guidance); the decoder may round a batched row differently in the last bits, so the
samples of "the same clip" are compared to a tolerance far below what one different code changes."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
from safetensors.numpy import load_file, save_file

from tunelab.generation.engine import Engine, Request
from tunelab.generation.worker import Worker

pytestmark = pytest.mark.filterwarnings("ignore:Adapter .* was active which is now deleted:UserWarning")
DURATION = 0.3  # seconds: 15 frames of the tiny model
_ids = itertools.count()


@dataclass
class Clip:
    codes: torch.Tensor  # (codebooks, frames)
    audio: np.ndarray


@dataclass
class Bench:
    engine: Engine
    adapters: dict[str, str]  # id -> folder
    decoded: list[torch.Tensor]  # the codes of every batch the model decoded, in order

    def request(self, prompt: str, seed: int, adapter: str | None = None, guidance: float | None = None,
                duration: float = DURATION) -> Request:  # fmt: skip
        return Request(id=f"r{next(_ids)}", prompt=prompt, duration_s=duration, seed=seed, guidance_scale=guidance,
                       adapter_id=adapter, adapter_path=self.adapters[adapter] if adapter else None)  # fmt: skip

    def make(self, requests: list[Request]) -> list[Clip]:
        before = len(self.decoded)
        result = self.engine.generate(requests)
        assert len(self.decoded) == before + 1
        codes = self.decoded[-1][0]  # (1, batch, codebooks, frames) -> (batch, codebooks, frames)
        assert len(result.audio) == len(requests) == codes.shape[0]
        return [Clip(codes[i], result.audio[i]) for i in range(len(requests))]


def perturb(folder: Path, seed: int) -> None:
    """Add seeded noise to the adapter's B matrices: a one-step adapter is too close to the base model to tell."""
    rng = np.random.default_rng(seed)
    tensors = load_file(folder / "adapter_model.safetensors")
    changed = {name: (t + rng.normal(0.0, 0.5, t.shape)).astype(t.dtype) if "lora_B" in name else t
               for name, t in tensors.items()}  # fmt: skip
    save_file(changed, folder / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, trained_adapter: Path) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("engine")
    shutil.copytree(tiny_model, root / "model")
    adapters = {}
    for seed, name in enumerate(("lofi", "jazz")):
        shutil.copytree(trained_adapter / "final", root / name)
        perturb(root / name, seed)
        adapters[name] = str(root / name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only waits on a second thread (more so on a busy machine)
    try:
        engine = Engine.load(str(root / "model"), cache_bytes=1 << 30)
        decoded: list[torch.Tensor] = []
        decode = engine.model.audio_encoder.decode

        def recording(codes: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            decoded.append(codes.detach().clone())
            return decode(codes, *args, **kwargs)

        engine.model.audio_encoder.decode = recording
        yield Bench(engine, adapters, decoded)
    finally:
        torch.set_num_threads(threads)


def same(a: Clip, b: Clip) -> bool:
    """The same codes, and samples equal but for the decoder's last-bit rounding."""
    if not torch.equal(a.codes, b.codes) or a.audio.shape != b.audio.shape:
        return False
    peak = max(float(np.abs(a.audio).max()), float(np.abs(b.audio).max()), 1e-3)
    return float(np.abs(a.audio - b.audio).max()) <= 1e-5 * peak


def different(a: Clip, b: Clip) -> bool:
    return not torch.equal(a.codes, b.codes) and not same(a, b)


def test_a_seed_alone_makes_the_same_clip_every_time_and_another_seed_another(bench: Bench) -> None:
    request = bench.request("calm piano melody", 7, "lofi")
    (first,), (again,) = bench.make([request]), bench.make([request])
    assert torch.equal(first.codes, again.codes) and np.array_equal(first.audio, again.audio)
    frames = bench.engine.frames(DURATION)
    assert first.codes.shape == (bench.engine.num_codebooks, frames)
    assert first.audio.shape == (frames * bench.engine.sample_rate // bench.engine.frame_rate,)
    assert first.audio.dtype == np.float32

    (other,) = bench.make([bench.request("calm piano melody", 8, "lofi")])
    assert different(first, other)


@pytest.mark.parametrize("guidance", [None, 3.0], ids=["no-guidance", "guidance-3"])
def test_a_request_makes_the_same_clip_alone_and_in_a_batch_of_others(bench: Bench, guidance: float | None) -> None:
    batch = [
        bench.request("fast drums and a loud synth bass", 1, "jazz", guidance),
        bench.request("x", 11, None, guidance),
        bench.request("calm piano melody", 7, "lofi", guidance),
        bench.request("calm piano melody", 7, "jazz", guidance),
        bench.request("calm piano melody", 7, None, guidance),
        bench.request("slow sad strings with a warm pad", 5, "lofi", guidance),
    ]
    together = bench.make(batch)
    for request, clip in zip(batch, together, strict=True):
        (alone,) = bench.make([request])
        assert same(alone, clip), (request, (alone.codes != clip.codes).float().mean())
    # and in another order, beside other company
    first, _ = bench.make([batch[2], batch[0]])
    assert same(first, together[2])


def test_generating_leaves_gradients_on_for_the_rest_of_the_process(bench: Bench) -> None:
    # tests and benches train in the same process after generating: the engine must not switch autograd off
    bench.engine.generate([Request("g", "calm piano melody", 0.1, seed=1)])
    assert torch.is_grad_enabled()


def test_adapters_and_the_base_model_make_different_clips_from_one_seed(bench: Bench) -> None:
    lofi, jazz, base = bench.make([bench.request("calm piano melody", 7, name) for name in ("lofi", "jazz", None)])
    assert different(lofi, jazz) and different(lofi, base) and different(jazz, base)


def test_guidance_changes_clips_and_a_scale_of_one_is_none(bench: Bench) -> None:
    def batch(guidance: float | None) -> list[Clip]:
        prompts = [("calm piano melody", 7), ("fast drums", 1), ("warm jazz guitar", 3), ("dark ambient pad", 4)]
        return bench.make([bench.request(prompt, seed, "lofi", guidance) for prompt, seed in prompts])

    plain = batch(None)
    # the tiny model listens little to its prompt: guidance moves a few codes of a clip, not necessarily every clip
    assert any(different(a, b) for a, b in zip(plain, batch(3.0), strict=True))
    assert all(same(a, b) for a, b in zip(plain, batch(1.0), strict=True))


def test_a_one_byte_cache_keeps_only_the_batch_adapters_and_changes_no_clip(bench: Bench) -> None:
    cache = bench.engine.cache
    requests = {name: bench.request("warm jazz guitar", 3, name, 3.0) for name in ("lofi", "jazz", None)}
    reference = dict(zip(requests, bench.make(list(requests.values())), strict=True))  # both adapters loaded
    assert sorted(cache.ids()) == ["jazz", "lofi"]
    budget, cache.budget_bytes = cache.budget_bytes, 1
    try:
        loads, evictions = cache.loads, cache.evictions
        jazz, base = bench.make([requests["jazz"], requests[None]])
        assert cache.ids() == ["jazz"] and cache.evictions == evictions + 1  # lofi went
        assert same(jazz, reference["jazz"]) and same(base, reference[None])

        base, lofi = bench.make([requests[None], requests["lofi"]])  # lofi loaded again, jazz goes
        assert cache.ids() == ["lofi"] and (cache.loads, cache.evictions) == (loads + 1, evictions + 2)
        assert same(lofi, reference["lofi"]) and same(base, reference[None])

        clips = bench.make(list(requests.values()))  # a batch needs both: both stay, past the budget
        assert sorted(cache.ids()) == ["jazz", "lofi"] and cache.evictions == evictions + 2
        assert all(same(clip, reference[name]) for name, clip in zip(requests, clips, strict=True))
        assert cache.used_bytes > cache.budget_bytes

        (base,) = bench.make([requests[None]])  # the base model alone: one adapter stays loaded
        assert len(cache.ids()) == 1 and same(base, reference[None])
    finally:
        cache.budget_bytes = budget


def test_preload_loads_an_adapter_into_free_room_only(bench: Bench) -> None:
    engine = bench.engine
    budget = engine.cache.budget_bytes
    try:
        bench.make([bench.request("calm", 1, "lofi")])
        engine.cache.budget_bytes = engine.cache.used_bytes  # full
        if "jazz" in engine.cache:
            engine.cache.budget_bytes = 1
            bench.make([bench.request("calm", 1, "lofi")])  # evicts jazz
            engine.cache.budget_bytes = engine.cache.used_bytes
        loaded, seconds = engine.preload("jazz", bench.adapters["jazz"])
        assert loaded is False and "jazz" not in engine.cache and seconds >= 0
        engine.cache.budget_bytes = budget
        assert engine.preload("jazz", bench.adapters["jazz"])[0] is True
        assert engine.cache.ids() == ["lofi", "jazz"]  # loaded, but first in line to go
    finally:
        engine.cache.budget_bytes = budget


def _job(bench: Bench, folder: Path, prompt: str, seed: int, adapter: str | None, duration: float = DURATION,
         guidance: float | None = None) -> dict[str, Any]:  # fmt: skip
    job_id = f"gen-{next(_ids)}"
    return {"id": job_id, "prompt": prompt, "duration_s": duration, "seed": seed, "guidance_scale": guidance,
            "adapter_id": adapter, "adapter_path": bench.adapters[adapter] if adapter else None,
            "output": str(folder / f"{job_id}.wav")}  # fmt: skip


def test_the_worker_batches_by_length_writes_each_wav_and_fails_only_the_job_whose_adapter_breaks(
    bench: Bench, tmp_path: Path
) -> None:
    events: list[dict[str, Any]] = []
    broken = tmp_path / "broken"
    broken.mkdir()
    bench.adapters["broken"] = str(broken)  # no files: PEFT cannot load it
    try:
        jobs = [_job(bench, tmp_path, "calm piano melody", 7, "lofi"), _job(bench, tmp_path, "calm", 2, "broken"),
                _job(bench, tmp_path, "calm piano melody", 7, None, duration=0.5),
                _job(bench, tmp_path, "calm piano melody", 7, "jazz")]  # fmt: skip
        Worker(bench.engine, events.append, 0.0).run(jobs)
    finally:
        del bench.adapters["broken"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_kind.setdefault(event["event"], []).append(event)
    assert [e["id"] for e in by_kind["failed"]] == [jobs[1]["id"]]
    assert "cannot load adapter" in by_kind["failed"][0]["error"]
    assert [e["ids"] for e in by_kind["started"]] == [[jobs[0]["id"], jobs[3]["id"]], [jobs[2]["id"]]]
    completed = {e["id"]: e for e in by_kind["completed"]}
    assert set(completed) == {jobs[0]["id"], jobs[2]["id"], jobs[3]["id"]}
    assert not Path(jobs[1]["output"]).exists()

    expected = bench.make([bench.request(j["prompt"], j["seed"], j["adapter_id"], duration=j["duration_s"])
                           for j in (jobs[0], jobs[3])]) + bench.make([bench.request("calm piano melody", 7, None,
                                                                                     duration=0.5)])  # fmt: skip
    for job, clip in zip((jobs[0], jobs[3], jobs[2]), expected, strict=True):
        event = completed[job["id"]]
        audio, rate = soundfile.read(job["output"], dtype="float32")
        assert rate == event["sample_rate"] == bench.engine.sample_rate
        assert event["duration_s"] == job["duration_s"] == len(audio) / rate
        assert np.abs(audio - clip.audio).max() <= 1 / 2**15  # 16-bit PCM of the clip
        assert set(event["timings"]) == {"load_s", "generate_s", "write_s", "batch_size"}
        assert not Path(job["output"] + ".partial").exists()
    assert completed[jobs[0]["id"]]["timings"]["batch_size"] == 2
    assert completed[jobs[2]["id"]]["timings"]["batch_size"] == 1
    assert set(completed[jobs[0]["id"]]["cache"]["adapters"]) >= {"lofi", "jazz"}


def test_the_worker_loads_a_batch_adapters_without_evicting_one_another(bench: Bench, tmp_path: Path) -> None:
    cache = bench.engine.cache
    budget, cache.budget_bytes = cache.budget_bytes, 1
    try:
        bench.make([bench.request("calm", 1, "jazz")])
        assert cache.ids() == ["jazz"]
        loads, evictions = cache.loads, cache.evictions
        events: list[dict[str, Any]] = []
        jobs = [_job(bench, tmp_path, "calm", 1, "lofi"), _job(bench, tmp_path, "calm", 1, "jazz")]
        Worker(bench.engine, events.append, 0.0).run(jobs)
        assert [e["event"] for e in events] == ["started", "completed", "completed"]
        assert (cache.loads, cache.evictions) == (loads + 1, evictions)  # lofi loaded once; jazz never left
        assert sorted(cache.ids()) == ["jazz", "lofi"]
    finally:
        cache.budget_bytes = budget


# --- adapter slots: an unloaded adapter's layers are refilled by the next adapter of its shape -----------------


def _fresh_engine(tiny_model: Path, budget: int) -> Engine:
    return Engine.load(str(tiny_model), cache_bytes=budget)


def _clip(engine: Engine, adapter: str | None, path: str | None) -> np.ndarray:
    request = Request(id=f"r{next(_ids)}", prompt="warm jazz guitar", duration_s=DURATION, seed=3,
                      guidance_scale=3.0, adapter_id=adapter, adapter_path=path)  # fmt: skip
    return engine.generate([request]).audio[0]


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and float(np.abs(a - b).max()) <= 1e-5 * max(float(np.abs(a).max()), 1e-3)


@pytest.fixture(scope="module")
def third_adapter(bench: Bench, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("blues") / "blues"
    shutil.copytree(bench.adapters["lofi"], folder)
    perturb(folder, 7)
    return str(folder)


def test_an_adapter_refilled_into_a_freed_slot_makes_the_clips_of_a_fresh_load(
    bench: Bench, tiny_model: Path, third_adapter: str
) -> None:
    lofi, jazz = bench.adapters["lofi"], bench.adapters["jazz"]
    files = {path: Path(path, "adapter_model.safetensors").read_bytes() for path in (lofi, jazz, third_adapter)}
    engine = _fresh_engine(tiny_model, budget=1)  # room for one adapter: each new one evicts the last
    lofi_clip = _clip(engine, "lofi", lofi)
    lofi_slot = engine.slot("lofi")
    _clip(engine, "jazz", jazz)  # lofi goes; its layers stay as a spare
    assert engine.cache.ids() == ["jazz"] and engine.spare_slots == 1 and engine.slot_reuses == 0
    blues_clip = _clip(engine, "blues", third_adapter)  # copied into lofi's old layers
    assert engine.slot("blues") == lofi_slot and engine.slot_reuses == 1
    assert len(engine.peft.peft_config) == 2  # no third set of layers was made

    alone = _fresh_engine(tiny_model, budget=1 << 30)
    assert _close(blues_clip, _clip(alone, "blues", third_adapter))  # as if loaded by PEFT
    assert not _close(blues_clip, lofi_clip)  # and not what the slot held before
    assert _close(_clip(engine, "lofi", lofi), lofi_clip)  # lofi again, into jazz's freed layers
    for path, data in files.items():  # refilling a slot wrote into memory, never into an adapter's file
        assert Path(path, "adapter_model.safetensors").read_bytes() == data


def test_an_idle_engine_prepares_one_spare_slot_within_the_budget(bench: Bench, tiny_model: Path) -> None:
    lofi, jazz = bench.adapters["lofi"], bench.adapters["jazz"]
    engine = _fresh_engine(tiny_model, budget=1 << 30)
    assert not engine.prepare_spare()  # nothing loaded yet: no shape to prepare for
    _clip(engine, "lofi", lofi)
    assert engine.prepare_spare() and engine.spare_slots == 1
    assert not engine.prepare_spare()  # one spare is enough
    jazz_clip = _clip(engine, "jazz", jazz)
    assert engine.slot_reuses == 1 and engine.spare_slots == 0 and len(engine.peft.peft_config) == 2
    assert _close(jazz_clip, _clip(_fresh_engine(tiny_model, 1 << 30), "jazz", jazz))

    tight = _fresh_engine(tiny_model, budget=1)
    _clip(tight, "lofi", lofi)
    assert not tight.prepare_spare() and tight.spare_slots == 0  # no room beside the loaded adapter


def test_only_plain_lora_adapters_of_the_same_shape_share_slots(tmp_path: Path, trained_adapter: Path) -> None:
    import json

    from tunelab.generation.engine import lora_shape

    def variant(name: str, **changes: Any) -> str:
        folder = tmp_path / name
        shutil.copytree(trained_adapter / "final", folder)
        config = json.loads((folder / "adapter_config.json").read_text())
        config.update(changes)
        (folder / "adapter_config.json").write_text(json.dumps(config))
        return str(folder)

    config = json.loads((trained_adapter / "final" / "adapter_config.json").read_text())
    base = lora_shape(variant("same"))
    assert base is not None and base == lora_shape(str(trained_adapter / "final"))
    modules = config["target_modules"]
    if isinstance(modules, list):  # the order of the targets does not matter
        assert lora_shape(variant("reordered", target_modules=list(reversed(modules)))) == base
    assert lora_shape(variant("rank", r=config["r"] * 2)) != base
    assert lora_shape(variant("alpha", lora_alpha=config["lora_alpha"] + 1)) != base
    assert lora_shape(variant("dora", use_dora=True)) is None
    assert lora_shape(variant("bias", bias="all")) is None
    assert lora_shape(str(tmp_path / "missing")) is None


def test_a_worker_left_idle_prepares_a_spare_and_still_answers(bench: Bench, tiny_model: Path) -> None:
    import queue
    import threading
    import time

    engine = _fresh_engine(tiny_model, budget=1 << 30)
    events: list[dict[str, Any]] = []
    inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
    inbox.put({"op": "preload", "adapter_id": "lofi", "adapter_path": bench.adapters["lofi"]})
    serving = threading.Thread(target=Worker(engine, events.append, 0.0).serve, args=(inbox,), daemon=True)
    serving.start()
    deadline = time.monotonic() + 30
    while engine.spare_slots == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.spare_slots == 1 and engine.cache.ids() == ["lofi"]
    inbox.put({"op": "preload", "adapter_id": "jazz", "adapter_path": bench.adapters["jazz"]})
    inbox.put(None)
    serving.join(30)
    assert not serving.is_alive()
    assert [(e["adapter_id"], e["loaded"]) for e in events] == [("lofi", True), ("jazz", True)]
    assert engine.slot_reuses == 1  # jazz went into the spare made while the worker waited
