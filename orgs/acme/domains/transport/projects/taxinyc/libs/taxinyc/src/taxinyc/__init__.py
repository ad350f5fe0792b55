"""Transport domain, taxinyc project: the tested logic behind the ingest and revenue flows."""
