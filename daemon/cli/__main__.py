"""``python -m jackgen.daemon.cli`` is the ``jackgen`` command."""

from jackgen.daemon.cli.main import main

main()
