"""The feedback loop end to end, with a simulated listener; prints JSON.

    python bench/loop.py [--pairs 64] [--eval-pairs 60] [--epochs 4] [--data-dir DIR]

A fresh studio on the tiny MusicGen it makes (real worker process, real training process, real database):
1. an A/B test of the base model against itself (B from the next seed), voted by a listener who prefers the
   brighter clip (higher spectral centroid; a tie when they differ by less than 1%);
2. a preference dataset from those votes (winner chosen, loser rejected), and a DPO run on it through the API;
3. the run's adapter, activated, in an A/B test against the base model on the same prompts with new seeds, voted
   by the same listener.
It prints the second test's win rate of the adapter with its Wilson interval, the p-value and the verdict, and the
shift in spectral centroid (adapter minus base model, Hz). tests/test_loop.py runs this script and asks for a
significant win (win rate ≥ 60%, Wilson lower bound above 50%).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPTS = ["calm piano melody", "bright synth melody", "dark bass tone", "warm guitar melody", "fast drums beat",
           "slow ambient pad", "happy pop melody", "soft strings chord"]  # fmt: skip
TIE_WITHIN = 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=64, help="pairs voted to make the preference dataset")
    parser.add_argument("--eval-pairs", type=int, default=60, help="pairs voted to judge the adapter")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per clip")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temporary folder, removed after")
    args = parser.parse_args(argv)
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="tunelab-loop-"))
    try:
        print(json.dumps(run(root, args), indent=2))
    finally:
        if args.data_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def run(data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from tunelab.app import create_app
    from tunelab.config import Settings

    started = time.monotonic()
    app = create_app(Settings(data_dir=data_dir, bootstrap_model=True, warm_worker=True, allowed_hosts=["testserver"]))
    with TestClient(app, base_url="http://testserver") as client:
        api = Api(client)
        first = api.abtest(None, None, args.pairs, args.duration, args.seed)
        first_votes = vote_all(api, first)
        dataset = api.post(f"/api/abtests/{first['id']}/dataset", {"name": "brighter (simulated listener)"})
        experiment = api.post("/api/experiments", {"name": "loop", "dataset_id": dataset["id"]})
        config = {"epochs": args.epochs, "learning_rate": args.learning_rate, "beta": args.beta, "batch_size": 4,
                  "max_audio_seconds": args.duration, "eval_fraction": 0.0, "save_every": 0, "seed": args.seed}  # fmt: skip
        run = api.post(f"/api/experiments/{experiment['id']}/runs", {"name": "dpo", "config": config})
        run = api.wait(f"/api/runs/{run['id']}", lambda r: r["status"] in ("completed", "failed", "cancelled"), 900)
        if run["status"] != "completed":
            raise SystemExit(f"the DPO run ended {run['status']}: {run.get('error')}")
        adapter = {"id": run["adapter_id"]}
        export = run["inputs"]["dataset_export"][0]
        lineage = api.get(f"/api/artifacts/{export}/lineage")
        trained = api.post(f"/api/adapters/{adapter['id']}/activate", {})
        second = api.abtest(adapter["id"], None, args.eval_pairs, args.duration, args.seed + 100_000)
        votes = vote_all(api, second)
        results = api.get(f"/api/abtests/{second['id']}")["results"]
    shift = statistics.mean(v["a_centroid"] for v in votes) - statistics.mean(v["b_centroid"] for v in votes)
    return {
        "preference_pairs": len(first_votes), "preference_decisive": sum(1 for v in first_votes if v["choice"] != "tie"),
        "dpo": {"epochs": args.epochs, "learning_rate": args.learning_rate, "beta": args.beta,
                "final_loss": trained["metrics"].get("final_loss"),
                "reward_accuracy": trained["metrics"].get("reward_accuracy")},
        "eval_pairs": len(votes), "a_wins": results["a_wins"], "b_wins": results["b_wins"], "ties": results["ties"],
        "win_rate": results["win_rate_a"], "win_rate_ci": results["win_rate_ci"], "p_value": results["p_value"],
        "significant": results["significant"], "sequential_ci": results["sequential_ci"],
        "verdict": results["verdict"], "centroid_shift_hz": round(shift, 1),
        "adapter_centroid_hz": round(statistics.mean(v["a_centroid"] for v in votes), 1),
        "base_centroid_hz": round(statistics.mean(v["b_centroid"] for v in votes), 1),
        "preference_abtest_id": first["id"], "lineage": {"dataset": lineage.get("dataset")},
        "seconds": round(time.monotonic() - started, 1),
    }  # fmt: skip


class Api:
    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.client.post(path, json=body)
        assert response.status_code in (200, 201, 202), f"{path}: {response.text}"
        return response.json()

    def wait(self, path: str, done: Any, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.get(path)
            if done(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def abtest(self, a: str | None, b: str | None, pairs: int, duration: float, seed: int) -> Any:
        samples = max(1, -(-pairs // len(PROMPTS)))
        test = self.post("/api/abtests", {"adapter_a_id": a, "adapter_b_id": b, "prompts": PROMPTS,
                                          "samples_per_prompt": samples, "duration_s": duration, "seed": seed})  # fmt: skip
        return self.wait(f"/api/abtests/{test['id']}", lambda t: t["status"] != "generating", 900)

    def clip(self, url: str) -> Any:
        import soundfile

        response = self.client.get(url)
        assert response.status_code == 200, response.text
        wave, rate = soundfile.read(io.BytesIO(response.content), dtype="float32")
        return wave, rate


def vote_all(api: Api, test: dict[str, Any]) -> list[dict[str, Any]]:
    """The listener's vote on every ready pair: the brighter clip wins."""
    from tunelab.musicgen.features import spectral_centroid

    votes = []
    for pair in test["pairs"]:
        if pair["status"] != "ready":
            continue
        first = spectral_centroid(*api.clip(pair["first"]["audio_url"]))
        second = spectral_centroid(*api.clip(pair["second"]["audio_url"]))
        if abs(first - second) <= TIE_WITHIN * max(first, second):
            choice = "tie"
        else:
            choice = "first" if first > second else "second"
        answer = api.post(f"/api/abtests/{test['id']}/votes", {"pair_id": pair["id"], "choice": choice})
        a_first = answer["pair"]["first_is"] == "a"
        votes.append({"choice": choice, "a_centroid": first if a_first else second,
                      "b_centroid": second if a_first else first})  # fmt: skip
    return votes


if __name__ == "__main__":
    sys.exit(main())
