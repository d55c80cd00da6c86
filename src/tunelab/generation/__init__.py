"""Generation: the worker process that makes audio with the current base model and cached LoRA adapters.

- `sampling`: per-request seeded sampling, so a request gives the same clip alone or batched with others.
- `cache`: the adapters loaded into the model, evicted least recently used past a memory budget.
- `engine`: the model, its processor and the cache; one batch of requests, possibly on different adapters, in one
  `generate` call through PEFT's mixed-adapter batches.
- `worker`: the process (`python -m tunelab.generation.worker`) the server starts and talks to by JSON lines.
"""
