"""Catalogue files: readers, validation, ingest into PostgreSQL, cross-match to mass labels."""
