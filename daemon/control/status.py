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
        procs["engine"] = self.engine.pid if self.engine else self.engine_pid
        procs["feeder"] = self.feeder.pid if self.feeder else None
        if self.jobs:
            for b, w in self.jobs.workers.items():
                procs[f"worker {b}"] = w.child.pid if w.child else None
        return procs

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
            "engine_restarts": self.engine.restarts if self.engine else None,
            "feeder_restarts": self.feeder.restarts if self.feeder else None,
            "tempo_bpm": self.tempo.bpm,
            "beats_per_bar": self.tempo.beats_per_bar,
            "tempo_anchor_frame": self.tempo.anchor_frame,
            "tempo_source": self.tempo_source,
            "midi_events": int(st.get("midi_events", 0)),
            "late_timed": int(st.get("late_timed", 0)),
            "master_peak": self.meters.get("master_peak"),
            "master": self.master_info(),
            "tracks": tracks,
            "jobs": self.jobs.summary() if self.jobs else [],
            "queue_length": self.jobs.queue_length() if self.jobs else 0,
            "processes": self.processes(),
            "uptime_s": round(time.monotonic() - self.started_mono, 1),
            "osc": None,  # the OSC server's counters, when it runs (status_parts)
            **{name: part() for name, part in self.status_parts.items()},
        }

    def _gpu_info(self) -> dict | None:
        """What the MusicGen worker runs on, once it has loaded (control itself never imports torch)."""
        w = self.jobs.workers.get("musicgen") if self.jobs else None
        if w is None or not w.info:
            return None
        return {"device": w.info.get("device"), "dtype": w.info.get("dtype"), "model": w.info.get("model")}

    def health(self) -> dict:
        disk = shutil.disk_usage(self.session_dir if self.session_dir.exists() else Path.cwd())
        jack_ok = self.engine_alive()
        return {
            "status": "ok" if jack_ok else "degraded",
            "jack": jack_ok,
            "redis": None,
            "database": None,
            "gpu": self._gpu_info(),
            "disk": {"free_bytes": disk.free, "ok": disk.free > 1 << 30},
            "queue_length": self.jobs.queue_length() if self.jobs else 0,
            "workers": {"feeder": self.feeder.pid is not None if self.feeder else False,
                        **({b: {"running": bool(w.child and w.child.pid), "ready": w.ready.is_set() and not w.fatal,
                                "error": w.fatal, "busy": w.current.id if w.current else None}
                            for b, w in self.jobs.workers.items()} if self.jobs else {})},
            "xruns": int(self.engine_status.get("xruns", 0)),
        }
