"""While the JACK server is gone, control's JACK client retries quietly, with back-off (real libjack)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from jackgen.daemon.control.connections import RETRY_FIRST_S, ConnectionKeeper, quiet_libjack


def test_retries_back_off_log_once_and_print_nothing(tmp_path, capfd, caplog):
    quiet_libjack()
    keeper = ConnectionKeeper("jackgen", f"no-such-server-{os.getpid()}", tmp_path / "connections.json")
    with caplog.at_level(logging.INFO, logger="jackgen.connections"):
        assert keeper.client() is None
        first_retry = keeper._next_try
        assert first_retry > time.monotonic()
        for _ in range(50):  # within the back-off: no new attempt
            assert keeper.client() is None
        assert keeper._next_try == first_retry
        time.sleep(RETRY_FIRST_S + 0.05)
        assert keeper.client() is None  # a second attempt, then a longer wait
        assert keeper._next_try - time.monotonic() > RETRY_FIRST_S * 1.5
    said = [r.getMessage() for r in caplog.records if "not reachable" in r.getMessage()]
    assert len(said) == 1, said
    out, err = capfd.readouterr()
    assert "Cannot connect" not in err + out and "jack server is not running" not in (err + out).lower()


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
