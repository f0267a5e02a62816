"""The package version, importable from every layer (the façade re-exports it)."""

__version__ = "0.1.0"
