"""``python -m mosnet``: the CLI (see mosnet.cli)."""

from mosnet.cli import main

raise SystemExit(main())
