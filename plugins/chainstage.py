"""A track's plugin chain, run by the producer that feeds the track, just ahead of the playhead.

Why here and not in the JACK callback (bench/chains.py has the numbers): 16
tracks × 3 plugins take 1.2 ms p50 / 1.8 ms p99.9 of a 5.3 ms period at 256
frames as Python calls that allocate a new array per plugin per block, VST3
plugins must be created and run on one thread (pedalboard#278) — and creating
one is file I/O. So the producer (feeder thread or generator pump thread)
builds the chain on its own thread and processes its audio in blocks before
writing it to the ring, staying at most ``lead`` frames ahead of the engine.

- **Changes** (a new chain, a bypass, a parameter) arrive from control on any
  thread and are applied at the next block boundary, or at the stream frame
  they are due (``at``) when they arrive in time. A new chain or a bypass
  crossfades over one block; a numeric parameter glides to its new value over
  20 ms in 16-frame steps: no clicks.
- **MIDI**: a chain headed by an instrument takes each chunk's MIDI events with the chunk
  (``process(frames, midi=[(offset, bytes)…])``); every event reaches the instrument in the block
  that holds its frame, at its offset in that block.
- **Latency**: what the plugins report is compensated in full: the first
  ``latency`` output frames are dropped and the end is flushed with zeros, so
  the track stays sample-aligned with every other track and with the dry take.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import threading
from typing import Any

import numpy as np

from jackgen.plugins.host import Chain

BLOCK = 256
REBUILD_AHEAD_S = 1.0  # audio made with the old chain while a new one loads (~0.1–0.15 s per VST3 here)
RAMP_S = 0.02  # parameter changes glide over 20 ms …
RAMP_STEP = 16  # … in steps of 16 frames


class ChainStage:
    """Owned by one producer thread: create it, process and flush on that thread."""

    def __init__(self, states: list[dict], rate: int, block: int = BLOCK, extra_dirs=(),
                 lead: int | None = None, crumb: np.ndarray | None = None) -> None:
        self.rate = rate
        self.crumb = crumb  # shared word naming the plugin this thread is in (Chain.process), or None
        self.lead = lead  # frames the producer may keep in the ring ahead of the playhead (None: no limit)
        self.block = block
        self.extra_dirs = tuple(extra_dirs)
        self.chain = Chain.from_state(states, rate, self.extra_dirs, crumb)
        self.latency = self.chain.latency_frames
        self.to_drop = self.latency
        self.frame = 0  # stream frames taken in
        self._pending: collections.deque[dict] = collections.deque()
        self._next_chain: list[dict] | None = None  # states of a chain to build (prepare)
        self._prepared: Chain | None = None  # built, takes over at the next block
        self._after_rebuild: list[dict] = []
        self._lock = threading.Lock()
        self._carry = np.zeros((0, 2), dtype=np.float32)
        self.errors: list[str] = []
        self._ramps: dict[tuple[int, str], list] = {}  # (plugin, parameter) -> [value, target, frames left]
        self._ramp_frames = max(RAMP_STEP, int(RAMP_S * rate))
        self._midi: list[tuple[int, int, bytes]] = []  # (stream frame, arrival order, bytes), sorted
        self._midi_seq = itertools.count()
        self.late_midi = 0  # live events that came after their frame was made (played at once)

    # ------------------------------------------------------------ any thread
    def submit(self, change: dict) -> None:
        """{"kind": "chain", "chain": [states]} | {"kind": "param", "index", "name", "value"}
        | {"kind": "bypass", "index", "on"}; optional "at" (stream frame).

        A new chain is built by ``prepare`` (loading plugins takes a while), which the
        producer calls once the ring holds enough audio made with the old chain;
        changes sent after it wait for it, as their indices refer to it."""
        with self._lock:
            if change["kind"] == "chain":
                self._next_chain = change["chain"]
                self._after_rebuild = []
            elif self._next_chain is not None or self._prepared is not None:
                self._after_rebuild.append(change)
            else:
                self._pending.append(change)

    def submit_midi(self, events) -> int:
        """Live MIDI from any thread: (stream frame, bytes) each, played at that frame, or in the next
        block if it is already made (counted in ``late_midi``). Returns how many came late."""
        late = 0
        with self._lock:
            for f, d in events:
                f = int(f)
                if f < self.frame:
                    f, late = self.frame, late + 1
                bisect.insort(self._midi, (f, next(self._midi_seq), bytes(d)))
            self.late_midi += late
        return late

    @property
    def rebuild_pending(self) -> bool:
        """A new chain waits to be built: the producer should let the ring fill deeper first."""
        return self._next_chain is not None

    def max_ahead(self, ring) -> int | None:
        """How much audio the producer may keep waiting in ``ring``: ``lead``, or, while a new
        chain waits to be built, about a second more made with the old one."""
        if self.lead is None:
            return None
        return self._deep(ring) if self.rebuild_pending else self.lead

    def _deep(self, ring) -> int:
        return min(self.lead + int(REBUILD_AHEAD_S * self.rate), int(0.9 * ring.capacity))

    def prepare_when_covered(self, ring) -> None:
        """Build a waiting chain once ``ring`` holds enough old-chain audio to cover the plugin loads."""
        if self.rebuild_pending and (self.lead is None or ring.ahead() >= 0.75 * self._deep(ring)):
            self.prepare()

    def prepare(self) -> None:
        """Build the waiting chain (slow: plugin files load); it takes over, crossfaded, at the next block."""
        with self._lock:
            states, self._next_chain = self._next_chain, None
        if states is None:
            return
        try:
            chain = Chain.from_state(states, self.rate, self.extra_dirs, self.crumb)
        except Exception as e:  # control validated each plugin; if one fails here, keep the old chain
            self.errors.append(f"chain: {e}")
            chain = None
        with self._lock:
            if self._next_chain is not None:
                return  # replaced again while this one loaded: the newer one is built next
            if chain is None:  # the old chain plays on; the changes that waited apply to it
                self._pending.extend(self._after_rebuild)
                self._after_rebuild = []
            else:
                self._prepared = chain

    # ------------------------------------------------------------ producer thread
    def process(self, frames: np.ndarray, last: bool = False, midi=None) -> np.ndarray:
        """(n, 2) in, (m, 2) out; whole blocks only until ``last`` (then everything, plus the latency flush).
        ``midi``: (frame offset in ``frames``, bytes) for the chain's instrument, sorted."""
        if midi:  # (never late: these frames come after everything made so far)
            base = self.frame + self._carry.shape[0]
            self.submit_midi((base + int(o), d) for o, d in midi)
        x = np.concatenate([self._carry, frames]) if self._carry.shape[0] else frames
        n_full = x.shape[0] if last else x.shape[0] // self.block * self.block
        self._carry = x[n_full:]
        outs = []
        for s in range(0, n_full, self.block):
            outs.append(self._block(x[s: s + self.block]))
        if last and self.latency:  # push the last real frames out of the plugins' delay lines
            z = np.zeros((self.block, 2), dtype=np.float32)
            left = self.latency
            while left > 0:
                outs.append(self._block(z)[: min(left, self.block)])
                left -= self.block
        out = np.concatenate(outs) if outs else np.zeros((0, 2), dtype=np.float32)
        if self.to_drop and out.shape[0]:
            cut = min(self.to_drop, out.shape[0])
            out = out[cut:]
            self.to_drop -= cut
        return np.ascontiguousarray(out, dtype=np.float32)

    def release(self) -> None:
        """Let go of the chain's plugins now (and of one built and not yet swapped in)."""
        with self._lock:
            prepared, self._prepared = self._prepared, None
        for c in (self.chain, prepared):
            if c is not None:
                c.release()

    def _due(self, end: int) -> list[dict]:
        with self._lock:
            due = [c for c in self._pending if c.get("at") is None or c["at"] < end]
            for c in due:
                self._pending.remove(c)
        return due

    def _block_midi(self, start: int, n: int) -> list[tuple[int, bytes]] | None:
        """The MIDI due in stream frames [start, start + n), as offsets in the block."""
        with self._lock:
            if not self._midi or self._midi[0][0] >= start + n:
                return None
            k = bisect.bisect_left(self._midi, (start + n, -1, b""))
            due, self._midi = self._midi[:k], self._midi[k:]
        return [(max(0, f - start), d) for f, _seq, d in due]

    def _block(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        start = self.frame
        self.frame += n
        midi = self._block_midi(start, n)
        xt = np.ascontiguousarray(x.T)
        old = None
        fades = []
        with self._lock:
            if self._prepared is not None:
                old, self.chain, self._prepared = self.chain, self._prepared, None
                self._pending.extend(self._after_rebuild)
                self._after_rebuild = []
                self._ramps.clear()  # the new chain starts at the values control holds
                # its latency is not compensated mid-stream (documented): a change of latency shifts the track
        for c in self._due(start + n):
            try:
                if c["kind"] == "param":
                    i, name, value = int(c["index"]), c["name"], c["value"]
                    cur = self.chain.plugins[i].get(name)
                    if isinstance(value, (int, float)) and isinstance(cur, (int, float)):
                        self.chain.plugins[i].params[name].check(self.chain.plugins[i].name, value)
                        self._ramps[(i, name)] = [float(cur), float(value), self._ramp_frames]
                    else:  # a choice: no in-between values
                        self.chain.set(i, name, value)
                elif c["kind"] == "bypass":
                    p = self.chain.plugins[int(c["index"])]
                    if p.bypass != bool(c["on"]):
                        fades.append(p)
            except Exception as e:  # control validated it; a plugin may still refuse: keep playing
                self.errors.append(f"{c.get('kind')}: {e}")
        if old is not None:  # an instrument swapped: the old one's notes fade with it, none hang in the new
            y_old = old.process(xt, self.crumb, midi)
            y_new = self.chain.process(xt, self.crumb, midi)
            old.release()
            return _crossfade(y_old, y_new).T
        if fades:
            return process_fading(self.chain, xt, fades, self.crumb, midi).T
        if self._ramps:
            return self._ramped(xt, midi).T
        return self.chain.process(xt, self.crumb, midi).T

    def _ramped(self, xt: np.ndarray, midi=None) -> np.ndarray:
        """Process in short pieces while parameters glide to their targets (no zipper clicks)."""
        parts = []
        for s in range(0, xt.shape[1], RAMP_STEP):
            for key in list(self._ramps):
                cur, target, left = self._ramps[key]
                step = min(RAMP_STEP, left)
                cur += (target - cur) * step / left
                left -= step
                self.chain.set(key[0], key[1], target if left <= 0 else cur)
                if left <= 0:
                    del self._ramps[key]
                else:
                    self._ramps[key] = [cur, target, left]
            sub = [(o - s, d) for o, d in midi if s <= o < s + RAMP_STEP] if midi else None
            parts.append(self.chain.process(xt[:, s: s + RAMP_STEP], self.crumb, sub))
        return np.concatenate(parts, axis=1)


def process_fading(chain: Chain, x: np.ndarray, fading: list, crumb: np.ndarray | None = None,
                   midi=None) -> np.ndarray:
    """(2, n) through ``chain``, the plugins in ``fading`` changing bypass over this block: each
    crossfades from its old state to its new one (in when it was bypassed, out when it was not)."""
    y = x
    for i, p in enumerate(chain.plugins):
        if crumb is not None:
            crumb[0] = i + 1
        run = (lambda b, p=p: p.process(b, midi)) if p.instrument else p.process
        if p in fading:
            was_bypassed = p.bypass
            p.bypass = False
            wet = run(y)
            y = _crossfade(y, wet) if was_bypassed else _crossfade(wet, y)
            p.bypass = not was_bypassed
        else:
            y = run(y)
    if crumb is not None:
        crumb[0] = 0
    return y


def _crossfade(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(2, n) a -> b, equal-gain linear over the block (the two are correlated: same input)."""
    n = a.shape[1]
    w = (np.arange(n, dtype=np.float32) + 0.5) / n
    return (a * (1.0 - w) + b * w).astype(np.float32)


def stage_for(req: dict, rate: int, crumb: np.ndarray | None = None) -> Any:
    """The ChainStage a stream request asks for (``"chain"``: plugin states), or None."""
    states = req.get("chain") or []
    if not states:
        return None
    return ChainStage(states, rate, extra_dirs=req.get("vst3_dirs") or (), lead=int(req.get("lead_frames") or 0) or None,
                      crumb=crumb)
