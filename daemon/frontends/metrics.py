"""``GET /metrics``: the daemon in Prometheus text format (prometheus-client).

Two kinds of numbers. Most are read at scrape time from what control already keeps (the engine's
counters, per-track underruns, queue depths, restarts, OSC counters), through a collector, so
nothing is counted twice. The callback-time histogram comes from the engine's own per-block
measurement: its process thread adds one to a 1 µs bucket in shared memory (``cbhist``; an
increment, nothing more), and this collector folds those 100 000 buckets into Prometheus's at
scrape time, off the real-time thread. Job durations and time to first audio are observed here as
each job's final event arrives (histograms per backend).

Names follow Prometheus conventions: ``jackgen_`` prefix, base units (seconds, ratios), ``_total``
for counters.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from jackgen.bridge.crumb import CB_HIST_BUCKETS, open_crumb

disable_created_metrics()  # no *_created series: a counter's reset shows as a drop, as Prometheus expects

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CB_BUCKETS_US = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 20000, 50000)
HIST_US = CB_HIST_BUCKETS  # the engine's buckets: 1 µs each up to 100 ms
JOB_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class ControlCollector:
    def __init__(self, control: Any) -> None:
        self.c = control
        self._hist: np.ndarray | None = None

    def _callback_hist(self) -> np.ndarray | None:
        if self._hist is None:
            h = open_crumb(self.c.cfg.instance, "cbhist", HIST_US, create=False)
            if len(h) == HIST_US and h.base is not None:  # a real mapping (control made it)
                self._hist = h
        return self._hist

    def collect(self):
        c = self.c
        st = c.engine_status
        yield CounterMetricFamily("jackgen_xruns", "JACK xruns the engine has seen (since it started)",
                                  value=int(st.get("xruns", 0)))
        under = CounterMetricFamily("jackgen_underruns", "Times a track's ring ran dry while it played",
                                    labels=["track"])
        for t, n in enumerate(c.track_underruns):
            under.add_metric([f"{t + 1:02d}"], n)
        yield under
        yield CounterMetricFamily("jackgen_skipped_frames", "Frames the engine skipped to re-lock streams after "
                                  "JACK skipped cycles", value=int(st.get("skipped_frames") or 0))
        yield GaugeMetricFamily("jackgen_dsp_load_ratio", "JACK's DSP load (0-1)",
                                value=float(st.get("dsp_load", 0.0)) / 100.0)
        eng = c.engine_info()
        yield GaugeMetricFamily("jackgen_engine_up", "1 while the engine answers", value=int(eng["ok"]))
        age = eng["last_status_age_s"]
        yield GaugeMetricFamily("jackgen_engine_status_age_seconds", "Seconds since the engine's last status",
                                value=float("nan") if age is None else age)
        h = self._callback_hist()
        if h is not None:
            counts = np.array(h, copy=True)  # one snapshot: the engine keeps adding while we read
            cum = np.cumsum(counts)
            total = int(cum[-1])
            buckets = [(str(b / 1e6), int(cum[min(b, HIST_US) - 1])) for b in CB_BUCKETS_US] + [("+Inf", total)]
            sum_s = float((counts * (np.arange(HIST_US) + 0.5)).sum()) / 1e6
            hf = HistogramMetricFamily("jackgen_callback_seconds", "JACK process-callback time per block")
            hf.add_metric([], buckets, sum_value=sum_s)
            yield hf
        q = GaugeMetricFamily("jackgen_queue_depth", "Jobs waiting, per backend and priority",
                              labels=["backend", "priority"])
        for (backend, prio), n in (getattr(c.jobs, "depths", None) or {}).items():
            q.add_metric([backend, prio], n)
        yield q
        r = CounterMetricFamily("jackgen_process_restarts", "Restarts of each supervised process", labels=["process"])
        for role, info in c.supervised().items():
            if isinstance(info, dict) and isinstance(info.get("restarts"), int):
                r.add_metric([role.replace(" ", "_")], info["restarts"])
        yield r
        osc = c.status_parts.get("osc")
        if osc is not None:
            o = osc()
            yield CounterMetricFamily("jackgen_osc_messages", "OSC messages received", value=o["messages"])
            yield CounterMetricFamily("jackgen_osc_errors", "OSC messages answered with an error", value=o["errors"])
            yield CounterMetricFamily("jackgen_osc_dropped", "OSC packets dropped (malformed, refused, flood)",
                                      value=o["dropped"])
        yield CounterMetricFamily("jackgen_plugin_load_failures", "Plugins that failed to load (or crashed loading)",
                                  value=c.plugin_load_failures)
        acc = c.access.counters()
        a = CounterMetricFamily("jackgen_refused_requests", "Requests refused (no token, network not allowed)",
                                labels=["reason"])
        for k, v in acc.items():
            if isinstance(v, int):
                a.add_metric([k], v)
        yield a
        lib = c.library
        yield GaugeMetricFamily("jackgen_database_up", "1 while the library's database answers",
                                value=int(bool(lib.last_ping.get("ok"))))
        yield CounterMetricFamily("jackgen_library_takes_recorded", "Takes this control added to the library",
                                  value=lib.takes_recorded)


class Metrics:
    """The registry ``/metrics`` serves; ``on_job_event`` is a job-board listener."""

    def __init__(self, control: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ControlCollector(control))
        self.jobs = Counter("jackgen_jobs", "Jobs by final status and backend", ["status", "backend"],
                            registry=self.registry)
        self.duration = Histogram("jackgen_job_duration_seconds", "From queued to done, per backend", ["backend"],
                                  buckets=JOB_BUCKETS_S, registry=self.registry)
        self.ttfa = Histogram("jackgen_time_to_first_audio_seconds", "From queued to the first audio, per backend",
                              ["backend"], buckets=JOB_BUCKETS_S, registry=self.registry)
        self._backend: collections.OrderedDict[str, str] = collections.OrderedDict()

    def on_job_event(self, view: Any, e: dict) -> None:
        b = e.get("backend")
        if isinstance(b, str) and b.isidentifier():
            self._backend[view.id] = b
            while len(self._backend) > 10_000:
                self._backend.popitem(last=False)
        if e.get("event") not in ("done", "failed", "cancelled"):
            return
        backend = self._backend.pop(view.id, None) or "unknown"
        self.jobs.labels(e["event"], backend).inc()
        t = e.get("timings")
        if e.get("event") == "done" and isinstance(t, dict):
            for name, hist in (("total_s", self.duration), ("ttfa_s", self.ttfa)):
                v = t.get(name)
                if isinstance(v, (int, float)) and 0 <= v < 1e6:
                    hist.labels(backend).observe(float(v))

    def render(self) -> bytes:
        return generate_latest(self.registry)
