"""Server: the FastAPI app behind ``attnscope serve`` (JSON for metadata, compact binary for arrays)."""
