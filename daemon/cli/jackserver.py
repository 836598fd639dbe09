"""Find or start a JACK server (the demo and tests; production runs its own jackd/PipeWire)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
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
    """A jackd with the dummy backend, owned by whoever started it (always stopped).

    Use a fixed server name per purpose, not a fresh one per run: jack2's
    shared-memory registry has 8 server slots and reclaims a dead server's slot
    only for a server of the same name, so unique names from killed servers
    fill it up until no jackd can start.
    """

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
        if not self.log_path:
            self.log_path = os.path.join(tempfile.gettempdir(), f"jackd-{self.server or 'default'}.log")
        out = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(self.log_path, errors="replace") as f:
                    tail = "".join(f.readlines()[-6:]).strip()
                raise RuntimeError(
                    f"jackd exited with code {self.proc.returncode}: {' '.join(args)}\n{tail}\n"
                    "(is a server of that name already running? if many jackd were killed, jack2's "
                    "registry may be full: stop every jackd and remove /dev/shm/jack-shm-registry)"
                )
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
        if self.proc is not None and self.server:
            # a killed jackd leaves its segments behind; the server is gone, so they are ours to remove
            for path in glob.glob(f"/dev/shm/jack_{self.server}_*") + glob.glob(f"/dev/shm/jack_sem.*_{self.server}_*"):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        self.proc = None
