"""``python -m reclayers`` runs the command line."""

from reclayers.cli import main

raise SystemExit(main())
