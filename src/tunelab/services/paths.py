"""User paths confined to the folders TuneLab may read: the data dir and the configured import roots."""

from __future__ import annotations

from pathlib import Path

from tunelab.config import Settings
from tunelab.errors import Unprocessable


def confined(path: str, settings: Settings, what: str) -> Path:
    """`path` with symlinks resolved, if it lies inside the data dir or an import root (422 path_not_allowed
    otherwise) and exists (422 path_not_found)."""
    roots = [settings.data_dir, *settings.import_roots]
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        resolved = None
    if resolved is None or not any(resolved.is_relative_to(root) for root in roots):
        raise Unprocessable(
            f"{what} {path!r} is not inside the data dir or an import root; move it there or add its folder to "
            "TUNELAB_IMPORT_ROOTS",
            code="path_not_allowed",
            details={"path": path, "roots": [str(root) for root in roots]},
        )
    if not resolved.exists():
        raise Unprocessable(f"{what} {path!r} does not exist", code="path_not_found", details={"path": path})
    return resolved
