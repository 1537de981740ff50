"""The ``prodcat`` command line: one module per command group (see :mod:`workers.cli.main`)."""
