"""What the tests share, imported as `support.<module>` (pyproject.toml puts tests/ on the path): the one
audit-record builder, the one SQLite oracle, the one correlation rule pack, the Falco traces reader, and
the helpers that run rules and Beam pipelines. Nothing here is collected as a test."""
