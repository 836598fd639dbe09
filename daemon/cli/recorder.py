"""Capture jackgen's ports (or any JACK ports) to memory/WAV with a separate JACK client.

The recorder is downstream of the engine in the JACK graph, so it sees each block
in the same cycle the engine wrote it: sample ``i`` of a recording is JACK frame
``start_frame + i``, the engine's own clock. That is what lets tests and users
line a capture up with a scheduled start exactly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import jack
import numpy as np
import soundfile as sf


@dataclass
class Recording:
    start_frame: int
    sample_rate: int
    data: np.ndarray  # (frames, channels) float32
    xruns: int
    gaps: int = 0  # cycles the recorder missed (left as zeros)
    valid: np.ndarray | None = None  # (frames,) bool: False where a cycle was missed
    xrun_frames: list[int] | None = None  # JACK frame time when each xrun was reported
    block_size: int = 0

    def xruns_during(self, margin_blocks: int = 2) -> int:
        """xruns reported while the captured frames were playing (graph changes around the
        capture, e.g. this recorder connecting, often cause xruns that touch nothing recorded)."""
        lo = self.start_frame - margin_blocks * self.block_size
        hi = self.start_frame + len(self.data) + margin_blocks * self.block_size
        return sum(1 for f in (self.xrun_frames or []) if lo <= f <= hi)

    def write(self, path: str, subtype: str = "FLOAT") -> None:
        """Write the capture; the file appears under ``path`` only complete (a full disk leaves nothing)."""
        import os

        from jackgen.common.errors import JackgenError
        from jackgen.common.files import write_failure

        part = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.part")
        try:
            sf.write(part, self.data, self.sample_rate, subtype=subtype, format="WAV")
            os.replace(part, path)
        except (OSError, sf.LibsndfileError) as e:
            try:
                os.unlink(part)
            except OSError:
                pass
            raise JackgenError(write_failure(path, e), status=507) from None


def resolve_ports(spec: str, client_name: str = "jackgen") -> list[str]:
    """``master`` / ``track_03`` / ``3`` -> full JACK port names (L, R)."""
    s = spec.strip()
    if s.isdigit():
        s = f"track_{int(s):02d}"
    if s == "master" or (s.startswith("track_") and s[6:].isdigit() and 1 <= int(s[6:]) <= 16):
        if s.startswith("track_"):
            s = f"track_{int(s[6:]):02d}"
        return [f"{client_name}:{s}_L", f"{client_name}:{s}_R"]
    raise ValueError(f"port {spec!r} is not master or track_01..track_16")


def record(
    ports: list[str],
    seconds: float,
    server: str | None = None,
    client_name: str = "jackgen-record",
    start_at: int | None = None,
    timeout_s: float | None = None,
) -> Recording:
    """Record ``seconds`` from ``ports`` (all must exist). Blocks until done.

    ``start_at``: first JACK frame to keep (default: the first cycle after the
    connections are made).
    """
    if not 0 < seconds <= 24 * 3600:
        raise ValueError(f"seconds must be > 0 and at most a day, got {seconds}")
    client = jack.Client(client_name, no_start_server=True, servername=server)
    try:
        rate = client.samplerate
        total = int(round(seconds * rate))
        buf = np.zeros((total, len(ports)), dtype=np.float32)
        valid = np.zeros(total, dtype=bool)
        inports = [client.inports.register(f"in_{i + 1}") for i in range(len(ports))]
        state = {"pos": 0, "start": None, "armed": False, "xruns": 0, "gaps": 0, "connected_cycles": 0}
        done = threading.Event()

        def process(frames: int) -> None:
            if not state["armed"] or done.is_set():
                return
            if state["start"] is None:
                # jack2 reports a connection made before its graph carries it: a port read
                # in that cycle is still silent. Capture from the second cycle in which
                # every port is connected.
                if not all(p.number_of_connections for p in inports):
                    state["connected_cycles"] = 0
                    return
                state["connected_cycles"] += 1
                if state["connected_cycles"] < 2:
                    return
            t0 = client.last_frame_time
            skip = 0
            if state["start"] is None:
                if start_at is not None:
                    if t0 + frames <= start_at:
                        return
                    skip = max(0, start_at - t0)
                state["start"] = t0 + skip
            # Index by frame time, not by call count: a cycle JACK skipped (xrun)
            # leaves a gap of zeros in place instead of shifting everything after it.
            p = t0 + skip - state["start"]
            if p != state["pos"]:
                state["gaps"] += 1
            n = min(frames - skip, total - p)
            if n > 0:
                for i, port in enumerate(inports):
                    buf[p : p + n, i] = port.get_array()[skip : skip + n]
                valid[p : p + n] = True
            state["pos"] = p + max(n, 0)
            if state["pos"] >= total:
                done.set()

        xrun_frames: list[int] = []

        def xrun(_delay: float) -> None:  # notification thread
            state["xruns"] += 1
            xrun_frames.append(client.frame_time)

        client.set_process_callback(process)
        client.set_xrun_callback(xrun)
        client.activate()
        for src, dst in zip(ports, inports):
            client.connect(src, dst)
        state["armed"] = True
        limit = timeout_s if timeout_s is not None else seconds + 10.0 + (
            max(0, (start_at or 0) - client.frame_time) / rate)
        if not done.wait(limit):
            raise TimeoutError(f"recording did not finish within {limit:.0f} s (is the JACK server running?)")
        client.deactivate()
        return Recording(int(state["start"]), rate, buf, state["xruns"], state["gaps"], valid, xrun_frames,
                         client.blocksize)
    finally:
        client.close()
