"""lockr-local: a self-hosted implementation of the lockr file-storage service."""

__version__ = "0.1.0"
