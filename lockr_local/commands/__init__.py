"""The implementations of the `lockr-local` subcommands, one module per group."""
