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


SYSLOG_PRIORITY = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "INFO": 6, "DEBUG": 7}


def setup_logging(level: str = "INFO", cfg=None) -> None:
    """Log to stderr. Under systemd (stderr is the journal) each line starts with its syslog
    priority (``<3>`` …) and no timestamp, so ``journalctl -p warning`` filters by level;
    ``[logging] level`` / ``levels`` (and ``JACKGEN_LOG_LEVEL``) choose what is logged."""
    import logging

    if cfg is not None:
        level = cfg.logging.level.upper()
    level = os.environ.get("JACKGEN_LOG_LEVEL", level).upper()
    if os.environ.get("JOURNAL_STREAM"):
        class JournalFormatter(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return f"<{SYSLOG_PRIORITY.get(record.levelname, 6)}>{super().format(record)}"

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter("%(name)s %(levelname)s %(message)s"))
        logging.basicConfig(level=level, handlers=[handler])
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)
    if cfg is not None:
        for name, lv in cfg.logging.levels.items():
            logging.getLogger(name).setLevel(lv.upper())
