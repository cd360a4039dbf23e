"""The sync agent: mirrors a local folder to a lockr endpoint over the public HTTP API."""
