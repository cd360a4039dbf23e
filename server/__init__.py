"""The lockr-local server: the lockr HTTP API on a database and a blob store."""
