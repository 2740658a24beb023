"""Uploaded datasets ingested: hostile archives checked member by member, images decoded within limits, and the
result in the trainer's form (service/training/uploaded.py) under its content address. No database, no HTTP."""

from service.ingest.ingest import Ingested, Options, ingest_archive

__all__ = ["Ingested", "Options", "ingest_archive"]
