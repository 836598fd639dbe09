"""The ``jackgen`` command: every verb has ``--help``.

The verbs live by kind: ``remote`` (thin calls to a running daemon over HTTP, from the command
table), ``processes`` (run, engine, control, worker) and ``offline`` (tools that work in this
process: render, bounce, warp, record, plugins, demo, install-units). Importing them registers them.
"""

from __future__ import annotations

from jackgen.daemon.cli import remote, processes, offline  # noqa: I001  (their order is the order of --help)
from jackgen.daemon.cli.app import app

__all__ = ["app", "main", "offline", "processes", "remote"]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
