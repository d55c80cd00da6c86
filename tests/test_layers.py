"""The package boundaries DESIGN.md draws, checked on the imports themselves: the API and the pages are two faces
over the services and do not import each other; only app.py composes them; domain/ does no I/O; the training
process shares only musicgen/ with the server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tunelab"


def imports(package: str) -> dict[str, set[str]]:
    """Each module of the package (by path) and the tunelab modules it imports, at any depth of the code."""
    found: dict[str, set[str]] = {}
    for path in sorted((SRC / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(SRC))] = {n for n in names if n.startswith("tunelab")}
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("api", ("tunelab.web", "tunelab.app")),
        ("web", ("tunelab.api", "tunelab.app")),
        ("services", ("tunelab.api", "tunelab.web", "tunelab.app")),
        ("store", ("tunelab.api", "tunelab.web", "tunelab.services", "tunelab.app")),
        ("domain", ("tunelab.api", "tunelab.web", "tunelab.services", "tunelab.store", "tunelab.app")),
        # The training process never touches the database; what it shares with the server is in musicgen/.
        ("training", ("tunelab.api", "tunelab.web", "tunelab.services", "tunelab.store", "tunelab.app")),
        ("musicgen", ("tunelab.training", "tunelab.api", "tunelab.web", "tunelab.services", "tunelab.store")),
    ],
)
def test_a_layer_imports_nothing_above_or_beside_it(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = {
        module: sorted(n for n in names if n.startswith(forbidden))
        for module, names in imports(package).items()
        if any(n.startswith(forbidden) for n in names)
    }
    assert wrong == {}
