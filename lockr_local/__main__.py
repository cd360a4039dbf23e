"""Allows `python -m lockr_local`, the same as the `lockr-local` command."""

from lockr_local.cli import main

raise SystemExit(main())
