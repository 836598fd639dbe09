"""JACK connections kept across restarts: control's store and the engine's keeper (real libjack)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from jackgen.common.jackconn import NOW_FILE, WANT_FILE
from jackgen.daemon.control.connections import ConnectionStore


def test_control_keeps_what_the_engine_publishes_and_wants_the_session_back(tmp_path):
    runtime, session = tmp_path / "run", tmp_path / "s" / "connections.json"
    store = ConnectionStore(runtime, session)
    store.use_session(session)
    assert json.loads((runtime / WANT_FILE).read_text())["connections"] == {}
    assert not store.update()  # the engine has published nothing yet
    runtime.joinpath(NOW_FILE).write_text(json.dumps({"jackgen:track_03_L": ["ardour:Audio 3/audio_in 1"]}))
    assert store.update()
    assert json.loads(session.read_text()) == {"jackgen:track_03_L": ["ardour:Audio 3/audio_in 1"]}
    token = json.loads((runtime / WANT_FILE).read_text())["restore"]
    assert json.loads((runtime / WANT_FILE).read_text()) == {"restore": token,  # for a new engine, not now
                                                             "connections": json.loads(session.read_text())}
    assert not store.update()  # unchanged file: nothing to do
    again = ConnectionStore(runtime, session)  # a restarted control
    again.use_session(session)
    want = json.loads((runtime / WANT_FILE).read_text())
    assert want["connections"] == {"jackgen:track_03_L": ["ardour:Audio 3/audio_in 1"]} and want["restore"] != token
    runtime.joinpath(NOW_FILE).write_text("{not json")
    time.sleep(0.01)
    os.utime(runtime / NOW_FILE)
    assert not again.update() and json.loads(session.read_text())  # a broken file changes nothing


def test_an_engine_without_a_server_says_so_in_one_line_per_start(tmp_path):
    """The engine tries for 5 s before it gives up; libjack's three lines per attempt stay out of stderr."""
    r = subprocess.run([sys.executable, "-c", (
        "import sys, logging; logging.basicConfig(level=logging.INFO); "
        "from jackgen.daemon.config import load_config; from jackgen.daemon.engine.driver import JackDriver; "
        "import jack\n"
        "cfg = load_config(None, {'jack.server': 'no-such-server-%d'})\n"
        "try:\n    JackDriver._open_client(type('D', (), {'cfg': cfg})())\n"
        "except jack.JackOpenError as e:\n    print('refused', file=sys.stderr)\n") % os.getpid()],
        capture_output=True, text=True, timeout=60)
    assert "refused" in r.stderr, r.stderr[-2000:]
    assert "Cannot connect" not in r.stderr and "jack server is not running" not in r.stderr.lower(), r.stderr[-2000:]
