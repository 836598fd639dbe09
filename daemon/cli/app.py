"""The Typer app of the commands that run something in this process (``processes``, ``offline``),
and their shared options. The remote commands are in ``remote``, on argparse, to start quickly."""

from __future__ import annotations

import os
import sys

import typer

from jackgen.daemon.cli.base import CONFIG_HELP

app = typer.Typer(
    name="jackgen",
    help="Headless real-time audio host: 16 stereo JACK tracks fed live by generators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = typer.Option(None, "--config", "-c", help=CONFIG_HELP)
# Negative numbers must not be taken for options.
NUMERIC_ARGS = {"ignore_unknown_options": True}


def setup_logging(level: str = "INFO") -> None:
    import logging

    logging.basicConfig(
        level=os.environ.get("JACKGEN_LOG_LEVEL", level),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
