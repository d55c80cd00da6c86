"""DuckDB persistence: the only package that holds SQL."""

from tunelab.store.db import Database

__all__ = ["Database"]
