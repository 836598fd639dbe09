"""What control knows about the running instance, kept so that a restarted control picks it up.

Mixed into :class:`jackgen.daemon.control.control.Control`. The engine, the feeder and the
workers do not stop when control does (they are supervised beside it), and the rings outlive
it. Control writes its runtime picture (each track's stream and state, the streams' producers,
the tempo grid's anchor, the last job event it handled) to ``<runtime>/live.json`` four times a
second when it changed (the runtime folder is a tmpfs: its fsync is cheap); a new control that finds the rings still in
use attaches to them and reads it back instead of starting over, so nothing that plays stops.
The supervisor's ``processes.json`` (pids, restarts, last exit codes) is read here too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from jackgen.common.files import atomic_write_json, read_json
from jackgen.daemon.control.state import Stream

log = logging.getLogger("jackgen.control")

LIVE_FILE = "live.json"
PROCESSES_FILE = "processes.json"
TRACK_RUNTIME = ("armed_epoch", "state", "epoch", "stream_id", "source", "started_frame", "ended_frame", "error")
LIVE_VERSION = 1


def _primed(s: Stream) -> bool:
    f = s.primed
    return f.done() and not f.cancelled() and f.exception() is None


class Live:
    @property
    def live_path(self) -> Path:
        return self.cfg.runtime_path / LIVE_FILE

    def live_data(self) -> dict:
        streams = []
        for s in self.streams.values():
            p = s.producer
            streams.append({"id": s.id, "track": s.track, "epoch": s.epoch, "path": s.path, "done": s.done,
                            "producer": getattr(p, "id", None), "take": s.take, "generated": s.generated,
                            "relay_key": s.relay_key, "primed": _primed(s)})
        return {
            "version": LIVE_VERSION, "rings_id": self.rings_id, "session": self.session,
            "tracks": [{k: getattr(tr, k) for k in TRACK_RUNTIME} for tr in self.tracks],
            "streams": streams, "tempo_anchor_frame": self.tempo.anchor_frame, "tempo_rate": self.tempo.rate,
            "master_gen": self._master_gen, "master_chain_latency": self.master_chain_latency,
            "engine_pid": self.engine_pid, "engine_hellos": self.engine_hellos, "relocks": self.relocks,
            "feeder_pid": self.feeder.last_pid if self.feeder else None,
            "job_events_last": self.jobs.last_event_id if self.jobs else None,
        }

    async def _live_loop(self) -> None:
        last = None
        while True:
            await asyncio.sleep(0.25)
            try:
                data = self.live_data()
                text = json.dumps(data, sort_keys=True, default=str)
                if text != last:
                    atomic_write_json(self.live_path, data)
                    last = text
            except Exception:
                log.exception("writing %s", self.live_path)

    def read_live(self) -> dict | None:
        try:
            data = json.loads(self.live_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("version") != LIVE_VERSION:
            return None
        return data

    def apply_live_tracks(self, data: dict) -> None:
        """Tracks, tempo grid and counters from a previous control (after ``load_session``)."""
        self.rings_id = str(data.get("rings_id") or self.rings_id)
        for tr, saved in zip(self.tracks, data.get("tracks") or []):
            for k in TRACK_RUNTIME:
                if k in saved:
                    setattr(tr, k, saved[k])
        if data.get("tempo_rate"):
            self.tempo.rate = int(data["tempo_rate"])
        self.tempo.anchor_frame = float(data.get("tempo_anchor_frame") or 0.0)
        self._master_gen = int(data.get("master_gen") or 0)
        self.master_chain_latency = int(data.get("master_chain_latency") or 0)
        self.engine_pid = data.get("engine_pid")
        self.engine_hellos = self._restored_hellos = int(data.get("engine_hellos") or 0)
        self.relocks = int(data.get("relocks") or 0)
        if self.feeder is not None and data.get("feeder_pid"):
            self.feeder.last_pid = int(data["feeder_pid"])

    def apply_live_streams(self, data: dict) -> None:
        """The streams a previous control followed, with their producers (after the job board exists)."""
        loop = asyncio.get_running_loop()
        for d in data.get("streams") or []:
            try:
                fut = loop.create_future()
                if d.get("primed"):
                    fut.set_result(0)
                producer = self.jobs.handle(str(d["producer"])) if d.get("producer") and self.jobs else None
                s = Stream(str(d["id"]), int(d["track"]), int(d["epoch"]), str(d["path"]), fut, producer=producer,
                           take=d.get("take"), generated=bool(d.get("generated")), relay_key=d.get("relay_key"))
                if d.get("done"):
                    s.end()
                self.streams[s.track] = s
            except (KeyError, TypeError, ValueError) as e:
                log.warning("ignoring a stream in %s: %s", self.live_path, e)

    def runtime_json(self, name: str, max_age_s: float = 0.0) -> dict[str, Any]:
        """A JSON object another process keeps in the runtime folder ({} if missing or broken),
        read again once ``max_age_s`` have passed since the last read."""
        cache = self.__dict__.setdefault("_runtime_cache", {})
        now = time.monotonic()
        hit = cache.get(name)
        if hit is not None and now - hit[0] < max_age_s:
            return hit[1]
        data = read_json(self.cfg.runtime_path / name)
        if not isinstance(data, dict):
            data = {}
        cache[name] = (now, data)
        return data

    def supervised(self) -> dict[str, Any]:
        """What the supervisor says of its children (``jackgen run``; empty under systemd)."""
        return self.runtime_json(PROCESSES_FILE, max_age_s=0.5)

    def exit_code_of(self, role: str) -> int | None:
        # read fresh: the process has just been seen gone
        code = (self.runtime_json(PROCESSES_FILE).get(role) or {}).get("last_exit")
        return int(code) if isinstance(code, int) else None
