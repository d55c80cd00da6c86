"""TuneLab: fine-tune MusicGen with LoRA adapters from human feedback."""

__version__ = "0.1.0"
