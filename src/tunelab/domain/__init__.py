"""Pydantic models and enums per entity; no I/O here."""
