"""What training, the registry and the generation worker share about MusicGen: loading a base model (safetensors
only), reading a checkpoint folder without loading it, the weights TuneLab refuses, and the tiny model TuneLab makes.

Nothing here imports torch or transformers at module level, so the server can describe a model folder cheaply.
"""
