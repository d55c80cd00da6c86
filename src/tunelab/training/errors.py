"""Errors that end a training run with a one-line reason and a chosen exit status.

TrainingError (exit 1: the run started and failed)
└── InputError (exit 2: bad arguments, data or base model, found before any training step)
"""

from __future__ import annotations


class TrainingError(Exception):
    """A failure whose message is shown to the person as the last line of output."""

    exit_code = 1


class InputError(TrainingError):
    """Something the person gave us is wrong; nothing was trained."""

    exit_code = 2
