"""What ``jackgen status`` and ``/health`` show: engine counters, tracks, processes, jobs, health.

Mixed into :class:`jackgen.daemon.control.control.Control`. Front ends add their own counters
through ``status_parts`` (the OSC server's packets, drops and subscribers).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path


class Status:
    # ------------------------------------------------------------ status
    def processes(self) -> dict[str, int | None]:
        procs: dict[str, int | None] = {"control": os.getpid()}
        sup = self.supervised()
        eng = (sup.get("engine") or {}).get("pid")
        procs["engine"] = self.engine_pid if self.engine_alive() and self.engine_pid else eng
        procs["feeder"] = self.feeder.pid if self.feeder else None
        for role, info in sup.items():  # the supervisor's workers, before (and after) the queue sees them
            if role.startswith("worker ") and isinstance(info, dict):
                procs[role] = info.get("pid")
        if self.jobs:
            here = self.jobs.local_host
            for w in self.jobs.workers_seen:
                if w.get("host") == here and not w.get("remote"):
                    procs.setdefault(f"worker {w['backend']}", w["pid"])
        return procs

    def jack_info(self) -> dict:
        """What the engine last said about the JACK server (``<runtime>/engine.json``)."""
        data = self.runtime_json("engine.json")
        alive = self.engine_alive()
        state = "running" if alive else str(data.get("state") or "unknown")
        if not alive and state == "running":
            state = "engine not answering"
        return {"ok": alive, "state": state, "message": "" if alive else str(data.get("message") or "")}

    def _restarts(self, role: str, seen: int) -> int:
        """The supervisor's count (``jackgen run``), else what control has seen itself."""
        n = (self.supervised().get(role) or {}).get("restarts")
        return int(n) if isinstance(n, int) else seen

    def redis_info(self) -> dict:
        j = self.jobs
        return {"url": self.cfg.redis_url if j is None else j.url, "ok": bool(j and j.ok),
                "embedded": self.cfg.redis_embedded, **({"error": j.error} if j and j.error else {})}

    def workers_info(self) -> list[dict]:
        return list(self.jobs.workers_seen) if self.jobs else []

    def status(self) -> dict:
        st = self.engine_status
        tracks = []
        for i, tr in enumerate(self.tracks):
            d = asdict(tr)
            d["track"] = i + 1
            if self.meters:
                d["peak"] = self.meters["track_peak"][2 * i : 2 * i + 2]
            tracks.append(d)
        return {
            "session": self.session,
            "instance": self.cfg.instance,
            "engine_running": self.engine_alive(),
            "jack_server": self.jack_info(),
            "xruns": int(st.get("xruns", 0)),
            "underruns": int(st.get("underruns", 0)),
            "dsp_load": float(st.get("dsp_load", 0.0)),
            "callback_max_us": float(st.get("cb_max_us", 0.0)),
            "callback_mean_us": float(st.get("cb_mean_us", 0.0)),
            "sample_rate": int(st.get("sample_rate", 0)),
            "block_size": int(st.get("block_size", 0)),
            "frame_time": int(st.get("frame_time", 0)),
            "late_commands": int(st.get("late_commands", 0)),
            "callback_errors": int(st.get("callback_errors", 0)),
            "engine_restarts": self._restarts("engine", max(0, self.engine_hellos - 1)),
            "feeder_restarts": self._restarts("feeder", self.feeder.restarts if self.feeder else 0),
            "control_restarts": self._restarts("control", 0),
            "reattached": self.reattached,
            "tempo_bpm": self.tempo.bpm,
            "beats_per_bar": self.tempo.beats_per_bar,
            "tempo_anchor_frame": self.tempo.anchor_frame,
            "tempo_source": self.tempo_source,
            "midi_events": int(st.get("midi_events", 0)),
            "late_timed": int(st.get("late_timed", 0)),
            "skipped_cycles": self.relocks,
            "skipped_frames": int(st.get("skipped_frames") or 0),
            "master_peak": self.meters.get("master_peak"),
            "master": self.master_info(),
            "tracks": tracks,
            "jobs": self.jobs.summary() if self.jobs else [],
            "queue_length": self.jobs.queue_length() if self.jobs else 0,
            "processes": self.processes(),
            "redis": self.redis_info(),
            "workers": self.workers_info(),
            "relay": {"gaps": 0, "gap_frames": 0, "bad": 0, **self.relay_counters},
            "uptime_s": round(time.monotonic() - self.started_mono, 1),
            "osc": None,  # the OSC server's counters, when it runs (status_parts)
            **{name: part() for name, part in self.status_parts.items()},
        }

    def _gpu_info(self) -> dict | None:
        """What the MusicGen workers run on, once loaded (control itself never imports torch)."""
        ws = [w for w in self.workers_info() if "musicgen" in w.get("backends", [])]
        if not ws:
            return None
        return {"device": ws[0].get("device"), "model": ws[0].get("model"), "workers": len(ws)}

    def health(self) -> dict:
        disk = shutil.disk_usage(self.session_dir if self.session_dir.exists() else Path.cwd())
        jack_ok = self.engine_alive()
        redis = self.redis_info()
        feeder_ok = bool(self.feeder and self.feeder.pid)
        failing = [name for name, ok in (("jack", jack_ok), ("redis", redis["ok"]), ("feeder", feeder_ok)) if not ok]
        by_backend: dict = {}
        for w in self.workers_info():
            for b in w.get("backends", []):
                d = by_backend.setdefault(b, {"running": True, "ready": True, "error": None, "busy": None,
                                              "count": 0})
                d["count"] += 1
                d["busy"] = d["busy"] or w.get("busy")
        for b, why in (self.jobs.unavailable.items() if self.jobs else ()):
            by_backend.setdefault(b, {"running": False, "ready": False, "busy": None, "count": 0})["error"] = why
        return {
            "status": "ok" if not failing else "degraded",
            "failing": failing,
            "jack": jack_ok,
            "jack_server": self.jack_info(),
            "redis": redis,
            "database": None,
            "gpu": self._gpu_info(),
            "disk": {"free_bytes": disk.free, "ok": disk.free > 1 << 30},
            "queue_length": self.jobs.queue_length() if self.jobs else 0,
            "workers": {"feeder": feeder_ok, **by_backend},
            "xruns": int(self.engine_status.get("xruns", 0)),
        }
