"""The README documents every setting and every CLI command."""

from __future__ import annotations

from pathlib import Path

import typer.main

from tunelab.cli import app
from tunelab.config import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _commands(group: typer.Typer, prefix: str = "tunelab") -> list[str]:
    names = [
        f"{prefix} {c.name or c.callback.__name__.replace('_', '-')}" for c in group.registered_commands if c.callback
    ]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None and sub.name
        names += _commands(sub.typer_instance, f"{prefix} {sub.name}")
    return names


def test_every_setting_is_documented() -> None:
    for field in Settings.model_fields:
        assert f"TUNELAB_{field.upper()}" in README, f"TUNELAB_{field.upper()} is not in the README"


def test_every_cli_command_is_documented() -> None:
    commands = _commands(app)
    assert "tunelab experiments list" in commands and "tunelab serve" in commands
    for command in commands:
        assert f"`{command}" in README, f"{command} is not in the README"


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
    assert typer.main.get_command(app).name is not None
