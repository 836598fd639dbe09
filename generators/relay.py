"""The relay: what a worker on another machine sends through Redis, brought onto the engine's host.

Two things travel (keys in ``jackgen.bridge.jobqueue``):

- **live audio** for a track, on ``audio:<job>:<epoch>``: one entry per chunk — ``pos`` (the frame
  the chunk starts at), ``frames``, ``rate``, ``ch``, ``data`` (little-endian float32, interleaved) —
  then ``eos`` (or ``cancel``). The feeder, which is the relay, writes it into the track's ring
  through the same producer loop as a file (so the track's chain runs here, beside the engine). A
  chunk that never came (``pos`` jumps) is filled with silence, counted and logged; a stream that
  stalls underruns like any producer, and one silent for ``STALL_S`` ends as an error. An entry
  that does not parse is counted, logged and skipped.
- **takes**: the worker writes its takes on its own disk, then sends each file on
  ``take:<job>:<take>`` (``seq``, ``data`` in 1 MB pieces, then ``end`` with the size, the JSON
  sidecar and the fence) and announces it on ``landing``. The lander (a thread of the relay)
  writes it into the session's ``audio_gen/`` as a local worker would (part file, fsync, rename,
  then the JSON) and marks it landed in the job's hash; the worker acks the job only then.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from jackgen.bridge import jobqueue as Q
from jackgen.common.files import atomic_write_json, fsync_dir, is_session_name
from jackgen.common.takes import TAKE_RE
from jackgen.generators.producer import EMPTY

log = logging.getLogger("jackgen.relay")

STALL_S = 30.0  # a remote stream silent this long has lost its worker
MAX_GAP_S = 10.0  # a jump further than this is not a lost chunk but a bad entry
PIECE = 1 << 20


class RelayError(RuntimeError):
    pass


def encode_chunk(pos: int, frames: np.ndarray, rate: int) -> dict:
    a = np.ascontiguousarray(frames, dtype="<f4")
    return {"pos": pos, "frames": a.shape[0], "rate": rate, "ch": a.shape[1], "data": a.tobytes(),
            "sent": repr(time.time())}


def _field(f: dict, name: str):
    v = f.get(name.encode()) if isinstance(next(iter(f), b""), bytes) else f.get(name)
    return v


def relay_chunks(r, key: str, rate: int, counters: dict, should_stop: Callable[[], bool],
                 stall_s: float = STALL_S, observe: Callable[[float], None] | None = None,
                 ) -> Iterator[tuple[np.ndarray, bool]]:
    """A remote stream's chunks, in order, gaps filled with silence (for ``RingFeed.run``).
    ``observe(seconds)``: each chunk's transport time (the sender's clock stamped it: across machines
    it includes their clock difference)."""
    last, expected = "0-0", 0
    heard = time.monotonic()
    max_gap = int(MAX_GAP_S * rate)
    while not should_stop():
        got = r.xread({key: last}, count=64, block=100)
        if not got:
            if time.monotonic() - heard > stall_s:
                raise RelayError(f"the remote worker sent nothing for {stall_s:.0f} s")
            continue
        heard = time.monotonic()
        for entry_id, f in got[0][1]:
            last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            if _field(f, "eos") is not None:
                yield EMPTY, True
                return
            if _field(f, "cancel") is not None:
                return
            try:
                pos, n = int(_field(f, "pos")), int(_field(f, "frames"))
                ch, r_rate = int(_field(f, "ch")), int(_field(f, "rate"))
                data = _field(f, "data")
                if r_rate != rate or ch not in (1, 2) or n < 0 or not isinstance(data, bytes) \
                        or len(data) != n * ch * 4 or pos < 0 or pos - expected > max_gap:
                    raise ValueError("fields out of range")
                a = np.frombuffer(data, dtype="<f4").reshape(n, ch).astype(np.float32)
            except (TypeError, ValueError) as e:
                counters["bad"] = counters.get("bad", 0) + 1
                log.warning("relay %s: skipped an entry that does not parse (%s)", key, e)
                continue
            if observe is not None and _field(f, "sent") is not None:
                try:
                    observe(time.time() - float(_field(f, "sent")))
                except ValueError:
                    pass
            if ch == 1:
                a = np.repeat(a, 2, axis=1)
            if pos > expected:
                gap = pos - expected
                counters["gaps"] = counters.get("gaps", 0) + 1
                counters["gap_frames"] = counters.get("gap_frames", 0) + gap
                log.warning("relay %s: %d frames never arrived at frame %d; filled with silence", key, gap, expected)
                yield np.zeros((gap, 2), np.float32), False
                expected = pos
            elif pos < expected:  # a repeat: keep only what is new
                a = a[expected - pos:]
            if a.shape[0]:
                yield a, False
                expected += a.shape[0]


# ---------------------------------------------------------------------------- takes
def send_take(r, keys: Q.Keys, jid: str, fence: int, session: str, path: Path, meta: dict) -> str:
    """Upload one finished take file (and its JSON) for the lander; returns the key it went on."""
    key = keys.take_upload(jid, path.stem)
    r.delete(key)
    h = hashlib.sha256()
    seq = 0
    with open(path, "rb") as f:
        while piece := f.read(PIECE):
            h.update(piece)
            r.xadd(key, {"seq": seq, "data": piece})
            seq += 1
    r.xadd(key, {"end": 1, "size": path.stat().st_size, "sha256": h.hexdigest(), "meta": json.dumps(meta, default=str)})
    r.expire(key, 3600)
    r.xadd(keys.landing, {"job": jid, "take": path.stem, "file": path.name, "fence": fence,
                                     "session": session, "key": key}, maxlen=10_000, approximate=True)
    return key


class Lander:
    """Lands uploaded takes in the session folder (a thread of the relay, on the engine's host)."""

    def __init__(self, r, keys: Q.Keys, sessions_dir: str) -> None:
        self.r, self.keys = r, keys
        self.sessions_dir = Path(sessions_dir).resolve()
        self.stop = threading.Event()
        self.consumer = f"lander-{os.getpid()}"
        self.landed = 0

    def run(self) -> None:
        stream, group = self.keys.landing, "landers"
        while not self.stop.is_set():
            try:
                try:
                    self.r.xgroup_create(stream, group, id="0", mkstream=True)
                except Exception as e:
                    if "BUSYGROUP" not in str(e):
                        raise
                got = self.r.xreadgroup(group, self.consumer, {stream: ">"}, count=1, block=1000)
                for _, entries in got or []:
                    for entry_id, f in entries:
                        try:
                            self.land({(k.decode() if isinstance(k, bytes) else k):
                                       (v.decode() if isinstance(v, bytes) else v) for k, v in f.items()})
                        except Exception as e:
                            log.error("could not land an uploaded take (%.200s): %s", f, e)
                        self.r.xack(stream, group, entry_id)
            except Exception as e:
                if not self.stop.is_set():
                    log.warning("lander: %s; retrying", e)
                    time.sleep(1.0)

    def land(self, a: dict) -> None:
        jid, take, file, session, key = (a.get(n) for n in ("job", "take", "file", "session", "key"))
        if not (isinstance(jid, str) and Q.JOB_ID_RE.match(jid) and isinstance(take, str) and TAKE_RE.match(take)
                and is_session_name(session)
                and isinstance(file, str) and file in (f"{take}.wav", f"{take}.flac")
                and key == self.keys.take_upload(jid, take)):
            raise RelayError("the announcement names no valid job, take, session or file")
        folder = self.sessions_dir / session / "audio_gen"
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f".{file}.{a.get('fence')}.landing"
        h = hashlib.sha256()
        last, seq, end = "0-0", 0, None
        deadline = time.monotonic() + 60
        with open(part, "wb") as out:
            while end is None:
                got = self.r.xread({key: last}, count=16, block=1000)
                if not got:
                    if time.monotonic() > deadline:
                        raise RelayError(f"the upload of {file} stopped")
                    continue
                deadline = time.monotonic() + 60
                for entry_id, f in got[0][1]:
                    last = entry_id
                    f = {k.decode() if isinstance(k, bytes) else k: v for k, v in f.items()}
                    if "end" in f:
                        end = f
                        break
                    if int(f["seq"]) != seq:
                        raise RelayError(f"piece {seq} of {file} is missing")
                    out.write(f["data"])
                    h.update(f["data"])
                    seq += 1
            out.flush()
            os.fsync(out.fileno())
        if int(end["size"]) != part.stat().st_size or end["sha256"].decode() != h.hexdigest():
            part.unlink(missing_ok=True)
            raise RelayError(f"the upload of {file} is damaged (size or checksum)")
        os.replace(part, folder / file)
        meta = json.loads(end["meta"])
        atomic_write_json(folder / f"{take}.json", meta if isinstance(meta, dict) else {})
        fsync_dir(folder)
        self.r.hset(self.keys.job(jid), f"landed:{take}", str(folder / file))
        self.r.delete(key)
        self.landed += 1
        log.info("landed %s from a remote worker (%d bytes)", folder / file, int(end["size"]))
