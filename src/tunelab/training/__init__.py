"""MusicGen LoRA training, run as a subprocess: ``python -m tunelab.training --help``.

Importing this package is cheap (no torch); `events` is what the server needs from it.
"""
