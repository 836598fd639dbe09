"""Find or start a JACK server (the demo and tests; production runs its own jackd/PipeWire)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import jack


def server_running(server: str | None = None) -> bool:
    """True if a JACK server answers. libjack's own complaints while probing are muted."""
    jack.set_error_function(lambda _msg: None)
    jack.set_info_function(lambda _msg: None)
    try:
        c = jack.Client("jackgen-probe", no_start_server=True, servername=server)
    except jack.JackError:
        return False
    finally:
        jack.set_error_function(None)
        jack.set_info_function(None)
    c.close()
    return True


class DummyJack:
    """A jackd with the dummy backend, owned by whoever started it (always stopped)."""

    def __init__(self, server: str | None = None, rate: int = 48000, period: int = 256,
                 realtime: bool = False, log_path: str | None = None) -> None:
        self.server = server
        self.rate = rate
        self.period = period
        self.realtime = realtime
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 10.0) -> DummyJack:
        jackd = shutil.which("jackd")
        if not jackd:
            raise RuntimeError("jackd is not installed: apt-get install jackd2 (or run `make setup`)")
        args = [jackd]
        if self.server:
            args += ["-n", self.server]
        args += ["-R", "-P", "70"] if self.realtime else ["--no-realtime"]
        args += ["-d", "dummy", "-r", str(self.rate), "-p", str(self.period)]
        env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with code {self.proc.returncode}: {' '.join(args)}")
            if server_running(self.server):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"jackd did not come up within {timeout_s:.0f} s: {' '.join(args)}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
