"""``python -m workers.cli``: the same as the ``prodcat`` command."""

from workers.cli.main import main

raise SystemExit(main())
