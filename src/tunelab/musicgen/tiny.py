"""A tiny, randomly initialised MusicGen written offline, for tests and demos.

The architecture is MusicGen's (T5 text encoder, 32 kHz EnCodec at 50 frames/s with 4 codebooks, a decoder
with 4 codebook heads), only a few hundred thousand parameters, so it trains and generates in seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLING_RATE = 32_000
CODEBOOK_SIZE = 64
NUM_CODEBOOKS = 4
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
]


def create_tiny_musicgen(directory: Path, seed: int = 0) -> Path:
    """Write a tiny MusicGen (model, tokenizer, feature extractor) to `directory` and return it."""
    import torch
    from transformers import EncodecFeatureExtractor, MusicgenForConditionalGeneration, MusicgenProcessor
    from transformers.utils import logging as hf_logging

    # MusicGen's pad id sits one past the codebook vocabulary on purpose; silence the config warning about it
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _build_tokenizer(seed)
    model = MusicgenForConditionalGeneration(_build_config(vocab_size=len(tokenizer)))
    model.eval()
    _fill_codebooks(model, seed)
    model.generation_config.decoder_start_token_id = CODEBOOK_SIZE
    model.generation_config.pad_token_id = CODEBOOK_SIZE
    model.generation_config.bos_token_id = CODEBOOK_SIZE
    model.generation_config.max_length = 64
    model.save_pretrained(directory, safe_serialization=True)
    feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLING_RATE)
    MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


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


def _fill_codebooks(model: Any, seed: int) -> None:
    """Seed every residual codebook with encoder outputs of synthetic audio (random EnCodec has zero codebooks)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    audio = _synthetic_audio(generator)
    encodec = model.audio_encoder
    with torch.no_grad():
        embeddings = encodec.encoder(audio)  # (batch, dim, frames)
        residual = embeddings.transpose(1, 2).reshape(-1, embeddings.shape[1])
        for layer in encodec.quantizer.layers:
            picks = torch.randperm(residual.shape[0], generator=generator)[: layer.codebook.codebook_size]
            layer.codebook.embed.copy_(residual[picks])
            layer.codebook.embed_avg.copy_(residual[picks])
            layer.codebook.cluster_size.fill_(1.0)
            residual = residual - layer.codebook.decode(layer.codebook.encode(residual))


def _synthetic_audio(generator: Any) -> Any:
    """Sines, chirps and noise at many pitches and levels: a varied enough spread of EnCodec frames."""
    import torch

    seconds, count = 0.5, 24
    t = torch.arange(int(SAMPLING_RATE * seconds)) / SAMPLING_RATE
    clips = []
    for i in range(count):
        freq = 55.0 * 2 ** (i / 3)
        level = 0.1 + 0.8 * torch.rand(1, generator=generator).item()
        clip = level * torch.sin(2 * torch.pi * freq * t * (1 + 0.5 * t))
        if i % 3 == 0:
            clip = clip + 0.3 * torch.randn(t.shape, generator=generator)
        clips.append(clip)
    return torch.stack(clips).unsqueeze(1)
