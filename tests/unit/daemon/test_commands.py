"""The command table is the one place a command is declared: OSC, HTTP and the CLI come from it."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest

from jackgen.common.errors import JackgenError
from jackgen.daemon.frontends import args as models
from jackgen.daemon.frontends.commands import (BY_NAME, COMMANDS, check_args, cli_verbs, http_request, match_osc,
                                               osc_arguments)

REPO = Path(__file__).resolve().parents[3]


def test_every_command_is_well_formed():
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))
    for c in COMMANDS:
        model = getattr(models, c.args)
        fields = set(model.model_fields)
        assert c.osc or c.http, c.name
        if c.osc:
            assert c.osc.startswith("/jackgen/"), c.name
            assert set(re.findall(r"{(\w+)}", c.osc)) <= fields, c.name
            assert set(c.osc_args) <= fields, c.name
        if c.http:
            assert c.http[0] in ("GET", "POST", "DELETE") and c.http[1].startswith(("/api/", "/health")), c.name
            assert set(c.fields_in_path(c.http[1])) <= fields, c.name
    routes = [c.http for c in COMMANDS if c.http]
    assert len(routes) == len(set(routes)), "two commands on one route"


def test_http_routes_come_from_the_table():
    from jackgen.daemon.frontends.http import build_app

    app = build_app(None)
    have = {(m, r.path) for r in app.routes for m in getattr(r, "methods", ())}
    for c in COMMANDS:
        if c.http:
            assert c.http in have, c.name


def test_cli_verbs_exist_and_call_table_commands_only():
    from jackgen.daemon.cli.remote import VERBS

    for verb, cmds in cli_verbs().items():
        assert verb in VERBS or verb.split()[0] in VERBS, f"the table names CLI verb {verb!r} ({cmds[0].name}); the CLI has no such verb"
    # the remote verbs reach control only through call(config, "<table command>")
    tree = ast.parse((REPO / "daemon" / "cli" / "remote.py").read_text())
    called = [n.args[1].value for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "call"]
    assert called and all(name in BY_NAME for name in called), called
    by_hand = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
               and "/api/" in n.value]
    assert not by_hand, f"routes written by hand in the CLI: {by_hand}"
    assert set(called) >= {c.name for c in COMMANDS if c.cli}, "a table command with a CLI verb the CLI never calls"


def test_the_top_level_help_lists_every_verb_with_its_own_words():
    from jackgen.daemon.cli.main import HIDDEN_VERBS, LOCAL_VERBS, top_help, typer_app

    app = typer_app()
    local = {(c.name or c.callback.__name__.replace("_", "-")): (c.callback.__doc__ or "").strip().splitlines()[0]
             for c in app.registered_commands if not c.hidden}
    local |= {g.name: g.typer_instance.info.help.splitlines()[0] for g in app.registered_groups}  # jackgen db …
    assert local == LOCAL_VERBS
    assert {c.name or c.callback.__name__ for c in app.registered_commands if c.hidden} == set(HIDDEN_VERBS)
    text = top_help()
    assert all(f"  {v} " in text for v in [*LOCAL_VERBS, "gain", "jobs", "midi", "status"])


def test_remote_verbs_start_without_typer_pydantic_or_control():
    import subprocess
    import sys

    code = ("import sys; from jackgen.daemon.cli.main import top_help; top_help(); "
            "from jackgen.daemon.cli import remote; from jackgen.daemon.frontends.commands import http_request; "
            "http_request('gain', track=1, db=0.0); "
            "print(sorted(m for m in ('typer', 'pydantic', 'httpx', 'urllib.request', 'http.client', 'numpy', "
            "'jackgen.daemon.control', 'jackgen.daemon.config') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_osc_addresses_resolve_to_commands_with_their_path_parts():
    cmd, parts = match_osc("/jackgen/track/3/chain/2/bypass")
    assert cmd.name == "chain.bypass" and parts == {"track": "3", "index": 2}
    cmd, parts = match_osc("/jackgen/track/master/chain/0/threshold_db")
    assert cmd.name == "chain.param" and parts == {"track": "master", "index": 0, "name": "threshold_db"}
    assert match_osc("/jackgen/track/1/gain")[0].name == "gain"
    assert match_osc("/jackgen/nope") is None and match_osc("/jackgen/track/1/chain/x/bypass") is None
    with pytest.raises(JackgenError, match="takes 1 argument, got 0"):
        osc_arguments(BY_NAME["gain"], "/jackgen/track/1/gain", ())
    assert osc_arguments(BY_NAME["stop"], "/a", ()) == {}


@pytest.mark.parametrize("value, osc, http", [
    ("loud", "/jackgen/track/1/gain needs a number for db, got str 'loud'", "db must be a number, got 'loud'"),
    (math.nan, "needs a finite number", "db must be a finite number"),
    (True, "needs a number", "must be a number"),
])
def test_one_check_phrased_for_each_surface(value, osc, http):
    cmd = BY_NAME["gain"]
    with pytest.raises(JackgenError, match=re.escape(osc)):
        check_args(cmd, {"track": "1", "db": value}, "osc", "/jackgen/track/1/gain")
    with pytest.raises(JackgenError, match=re.escape(http)):
        check_args(cmd, {"track": "1", "db": value}, "http", "/api/tracks/1/gain")
    with pytest.raises(JackgenError, match="missing field 'db'"):
        check_args(cmd, {"track": "1"}, "http", "/api/tracks/1/gain")
    assert check_args(cmd, {"track": "1", "db": -6}, "osc", "x").db == -6.0


def test_flags_and_files():
    mute = BY_NAME["mute"]
    assert [check_args(mute, {"track": 1, "on": v}, "http", "x").on for v in (1, "on", True, 0, "off")] == \
        [True, True, True, False, False]
    with pytest.raises(JackgenError, match="0 or 1"):
        check_args(mute, {"track": 1, "on": 5}, "osc", "/jackgen/track/1/mute")
    with pytest.raises(JackgenError, match="path to an audio file"):
        check_args(BY_NAME["play"], {"track": 1, "file": 42}, "http", "x")


def test_the_cli_builds_its_requests_from_the_table():
    assert http_request("gain", track=3, db=-6.0) == ("POST", "/api/tracks/3/gain", {"db": -6.0})
    assert http_request("chain.bypass", track="master", index=1, on="on") == \
        ("POST", "/api/tracks/master/chain/1/bypass", {"on": "on"})
    assert http_request("jobs.cancel", job_id="j1") == ("DELETE", "/api/jobs/j1", None)
    assert http_request("status") == ("GET", "/api/status", None)
