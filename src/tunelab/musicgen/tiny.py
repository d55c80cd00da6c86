"""A tiny MusicGen, trained offline on synthetic melodies, for tests and demos.

The architecture is MusicGen's (T5 text encoder, 32 kHz EnCodec at 50 frames/s with 4 codebooks, a decoder
with 4 codebook heads), under a million parameters, so it trains and generates in seconds on a CPU. Unlike a
randomly initialised one it makes real sound: its codec was trained to encode and decode the note sequences of
`synth`, and its language model to generate their codes from prompts whose words steer pitch ("low", "bass",
"high"), brightness ("bright", "dark", "warm") and tempo ("fast", "upbeat", "slow", "calm"); see synth.py.

Training it takes a few minutes, so it is done once per recipe version (for seed 0, the recipe's own) into a cache
folder, and `create_tiny_musicgen` copies it from there: `$TUNELAB_CACHE_DIR`, else `$XDG_CACHE_HOME/tunelab`, else
`~/.cache/tunelab`. Another seed continues that model's language-model training for a few seconds on its own
seeded clips and batches, so each seed is a different, deterministic model that sounds as good, without a second
long build. A build goes to a `.partial-<pid>` folder renamed into place when complete, under a file lock, so
processes that race wait for one build instead of each making their own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunelab.musicgen.tiny_training import Recipe

log = logging.getLogger(__name__)

SAMPLING_RATE = 32_000
CODEBOOK_SIZE = 64
NUM_CODEBOOKS = 4
# bump whenever what a build writes changes (recipe, sizes, tokenizer, synth): caches of other versions are ignored
RECIPE_VERSION = 5
BASE_SEED = 0  # the seed of the long build; other seeds continue it
RECIPE = Recipe()
CACHE_ENV = "TUNELAB_CACHE_DIR"
_MODEL_FILES = ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json")
_CORPUS_WORDS = [
    "upbeat",
    "electronic",
    "music",
    "calm",
    "ambient",
    "pad",
    "slow",
    "piano",
    "melody",
    "fast",
    "drums",
    "bass",
    "guitar",
    "synth",
    "lofi",
    "hip",
    "hop",
    "jazz",
    "rock",
    "pop",
    "classical",
    "strings",
    "orchestra",
    "happy",
    "sad",
    "dark",
    "bright",
    "warm",
    "cold",
    "loud",
    "soft",
    "sine",
    "noise",
    "tone",
    "chord",
    "beat",
    "groove",
    "rhythm",
    "dreamy",
    "energetic",
    "mellow",
    "epic",
    "cinematic",
    "minimal",
    "techno",
    "house",
    "funk",
    "soul",
    "blues",
    "low",
    "high",
]


def create_tiny_musicgen(directory: Path, seed: int = 0, cache_dir: Path | None = None) -> Path:
    """Write the tiny trained MusicGen for `seed` (model, tokenizer, feature extractor) to `directory`; return it.

    The first call for a seed trains it (a few minutes) into the cache (`cache_dir`, else `cache_root()`); later
    calls copy it from there. Where the cache cannot be written, the model is built straight into `directory`.
    """
    directory = Path(directory)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    if not _complete(_cache_folder(root, seed)) and not _writable(root):
        log.warning("tiny MusicGen: cannot write the cache %s; building straight into %s", root, directory)
        return build_tiny_musicgen(directory, seed)
    source = cached_tiny_musicgen(seed, root)
    directory.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.iterdir()):
        shutil.copyfile(file, directory / file.name)
    return directory


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def cache_root() -> Path:
    """Where built tiny models are kept: $TUNELAB_CACHE_DIR, else $XDG_CACHE_HOME/tunelab, else ~/.cache/tunelab."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tunelab"


def cached_tiny_musicgen(seed: int = 0, cache_dir: Path | None = None) -> Path:
    """The cache folder holding the tiny MusicGen of `seed` for this recipe version, built first if missing."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    folder = _cache_folder(root, seed)
    if _complete(folder):
        return folder
    base = None if seed == BASE_SEED else cached_tiny_musicgen(BASE_SEED, root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{folder.name}.lock"):
        if _complete(folder):  # another process built it while this one waited
            return folder
        for leftover in root.glob(f"{folder.name}.partial-*"):  # from a build that was cut short
            shutil.rmtree(leftover, ignore_errors=True)
        partial = root / f"{folder.name}.partial-{os.getpid()}"
        build_tiny_musicgen(partial, seed, base=base)
        try:
            partial.rename(folder)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
            if not _complete(folder):
                raise
    return folder


def _cache_folder(root: Path, seed: int) -> Path:
    return root / f"tiny-musicgen-v{RECIPE_VERSION}-seed{seed}"


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _MODEL_FILES)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` while the block runs (none where fcntl is missing: Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("tiny MusicGen: waiting for another process building it (%s)", path.with_suffix(""))
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_tiny_musicgen(directory: Path, seed: int = 0, recipe: Recipe = RECIPE, base: Path | None = None) -> Path:
    """Train the tiny MusicGen for `seed` and write it to `directory` (no cache).

    Seed `BASE_SEED` is the long build (a few minutes). Another seed starts from `base` (that build's folder; built
    into `directory` first when not given) and trains its language model a few seconds more
    (`tiny_training.reseed_tiny_musicgen`).
    """
    import torch
    from transformers import EncodecFeatureExtractor, MusicgenForConditionalGeneration, MusicgenProcessor
    from transformers.utils import logging as hf_logging

    from tunelab.musicgen.tiny_training import reseed_tiny_musicgen, train_tiny_musicgen

    # MusicGen's pad id sits one past the codebook vocabulary on purpose; silence the config warning about it
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if seed != BASE_SEED:
        source = base if base is not None else build_tiny_musicgen(directory, BASE_SEED, recipe)
        log.info("tiny MusicGen: seed %d from the seed-%d build (a few seconds)", seed, BASE_SEED)
        model = MusicgenForConditionalGeneration.from_pretrained(source, use_safetensors=True)
        processor = MusicgenProcessor.from_pretrained(source)
        with _single_thread(), _progress(recipe.reseed_steps, f"tiny MusicGen seed {seed}") as advance:
            reseed_tiny_musicgen(model, processor.tokenizer, seed, recipe, advance)
        model.save_pretrained(directory, safe_serialization=True)
        processor.save_pretrained(directory)
        return directory
    log.info("tiny MusicGen: building seed %d into %s (a few minutes, once)", seed, directory)
    with _single_thread(), _progress(recipe.total_steps, f"tiny MusicGen seed {seed}") as advance:
        torch.manual_seed(seed)
        tokenizer = _build_tokenizer(seed)
        model = MusicgenForConditionalGeneration(_build_config(vocab_size=len(tokenizer)))
        train_tiny_musicgen(model, tokenizer, seed, recipe, advance)
    model.generation_config.decoder_start_token_id = CODEBOOK_SIZE
    model.generation_config.pad_token_id = CODEBOOK_SIZE
    model.generation_config.bos_token_id = CODEBOOK_SIZE
    model.generation_config.max_length = 64
    model.save_pretrained(directory, safe_serialization=True)
    feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLING_RATE)
    MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """torch on one thread for the block: the number of cores then does not change what a seed builds, and this
    tiny model's small operations run no slower (on a busy machine, two threads were ten times slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _progress(total: int, description: str) -> Iterator[Any]:
    """A tqdm bar on stderr (shown on a terminal only) counting training steps; yields its `update`."""
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="step", disable=None, mininterval=1.0) as bar:
        yield bar.update


def _build_config(vocab_size: int) -> Any:
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    text_encoder = T5Config(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
    )
    audio_encoder = EncodecConfig(
        sampling_rate=SAMPLING_RATE,
        upsampling_ratios=[8, 5, 4, 4],
        codebook_size=CODEBOOK_SIZE,
        target_bandwidths=[1.2],
        hidden_size=16,
        num_filters=8,
        num_lstm_layers=1,
        use_causal_conv=False,
        audio_channels=1,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=CODEBOOK_SIZE,
        num_codebooks=NUM_CODEBOOKS,
        hidden_size=64,
        ffn_dim=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        pad_token_id=CODEBOOK_SIZE,
        bos_token_id=CODEBOOK_SIZE,
        # wider than MusicGen's 0.02 so that a few LoRA steps visibly move this tiny model's predictions
        initializer_factor=0.1,
    )
    decoder.decoder_start_token_id = CODEBOOK_SIZE
    config = MusicgenConfig(text_encoder=text_encoder, audio_encoder=audio_encoder, decoder=decoder)
    # forward(labels=...) shifts labels right with this id; generate() looks for it on the outer config too
    config.decoder_start_token_id = CODEBOOK_SIZE
    return config


def _build_tokenizer(seed: int) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    special = ["<pad>", "</s>", "<unk>"]
    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=160, special_tokens=special, unk_token="<unk>", show_progress=False)
    words = list(_CORPUS_WORDS)
    corpus = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    unigram.train_from_iterator(corpus, trainer=trainer)
    # the trainer is multi-threaded: round scores and sort ties so the same seed always gives the same file
    learned = [(piece, round(float(score), 6)) for piece, score in json.loads(unigram.to_str())["model"]["vocab"]]
    pieces = sorted((p for p in learned if p[0] not in special), key=lambda p: (-p[1], p[0]))
    vocab = [(token, 0.0) for token in special] + pieces
    return T5Tokenizer(vocab=vocab, extra_ids=0)
