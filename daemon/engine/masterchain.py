"""The master bus's plugin chain, hosted in the engine process (VST3 and pedalboard built-ins).

Why in the engine and not ahead of a ring like the track chains: the master is the
live mix of 16 faders; processing it anywhere else would put the whole mix a ring
behind the controls. bench/engine.py (``--master-chain``) measures what running
the plugins in the JACK callback costs.

- **Building** happens on the engine's loader thread (``Loader``), never in the
  callback: control writes the chain's plugin states to
  ``/dev/shm/jackgen.<instance>.master-chain.json`` and sends ``CMD_MASTER_CHAIN gen``;
  the callback passes the generation on; the loader reads the file, loads the
  plugins, runs them once on silence at the block size (first-use costs off the
  real-time thread) and hands the chain over. The callback swaps it in at a block
  boundary with a one-block crossfade and reports ``EVT_MASTER_CHAIN``. Chains the
  callback is done with go back to the loader to be destroyed there.
- **Parameters** (``CMD_MASTER_PARAM``) glide over 20 ms in 32-frame steps;
  **bypass** (``CMD_MASTER_BYPASS``) crossfades over one block. Both name the chain
  generation they were meant for; a stale one is counted and ignored.
- **Crashes**: before each plugin runs, the callback writes its index + 1 to a
  shared-memory word (``/dev/shm/jackgen.<instance>.crumb-engine``; the loader writes
  −(index + 1) while loading). If the engine dies inside a plugin, the word still
  names it: control marks that plugin failed and the restarted engine comes back
  without it.

Thread rules: ``process`` and ``apply_*`` run on JACK's process thread and follow
rt.py's rules (a plugin allocates its output array: bounded, freed by reference
counting, measured in bench/engine.py). The loader thread is the only other one.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from jackgen.bridge import schema as S
from jackgen.plugins.host import Chain
from jackgen.plugins.chainstage import process_fading

log = logging.getLogger("jackgen.engine")

RAMP_S = 0.02  # parameter glides: 20 ms …
RAMP_STEP = 32  # … in steps of 32 frames


def chain_file(instance: str) -> Path:
    return Path("/dev/shm") / f"jackgen.{instance}.master-chain.json"


class MasterChain:
    """Process thread: ``process``, ``apply_param``, ``apply_bypass``, ``request``. Loader thread: the rest."""

    def __init__(self, rate: int, crumb: np.ndarray | None = None) -> None:
        self.rate = rate
        self.crumb = crumb if crumb is not None else np.zeros(1, dtype=np.int64)
        self.chain: Chain | None = None
        self.generation = 0
        self.latency = 0
        self.want = 0  # generation the loader should build next (set by the callback)
        self.incoming: tuple[int, Chain] | None = None  # built by the loader, taken by the callback
        self.failed: tuple[int, str] | None = None  # the loader could not build it
        self.retired: collections.deque[Chain] = collections.deque()  # for the loader to destroy
        self.ramps: dict[tuple[int, str], list] = {}
        self.fading: list = []  # plugins whose bypass changes in the next block
        self.errors = 0  # blocks a plugin raised in (passed dry)
        self.stale = 0  # parameter/bypass commands for a chain that is gone
        self._n = 0
        self._w = np.zeros(0, dtype=np.float32)
        # The loader sleeps in a read on this pipe (GIL released) until the callback has work
        # for it: a thread that woke up to poll would compete with the callback for the GIL.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def wake(self) -> None:
        """Process thread: one byte to the loader (non-blocking; a full pipe already wakes it)."""
        try:
            os.write(self._wake_w, b"w")
        except OSError:
            pass

    @property
    def busy(self) -> bool:
        return self.chain is not None or self.incoming is not None or self.failed is not None

    # ------------------------------------------------------------ process thread
    def request(self, gen: int) -> None:
        self.want = gen
        self.wake()

    def apply_param(self, gen: int, i: int, name: str, value) -> None:
        chain = self.chain
        if chain is None or gen != self.generation or not 0 <= i < len(chain.plugins):
            self.stale += 1
            return
        p = chain.plugins[i]
        cur = p.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(cur, (int, float)) \
                and not isinstance(cur, bool):
            p.params[name].check(p.name, value)
            self.ramps[(i, name)] = [float(cur), float(value), int(RAMP_S * self.rate)]
        else:
            p.set(name, value)

    def apply_bypass(self, gen: int, i: int, on: bool) -> None:
        chain = self.chain
        if chain is None or gen != self.generation or not 0 <= i < len(chain.plugins):
            self.stale += 1
            return
        p = chain.plugins[i]
        if p.bypass != bool(on) and p not in self.fading:
            self.fading.append(p)

    def process(self, master: np.ndarray, events) -> None:
        """Run the chain on the planar (2, n) master block in place."""
        n = master.shape[1]
        if n != self._n:
            self._n = n
            self._w = ((np.arange(n, dtype=np.float32) + 0.5) / n).astype(np.float32)
        failed = self.failed
        if failed is not None:
            self.failed = None
            events.put(S.pack(S.EVT_MASTER_CHAIN, failed[0], 0, 0, failed[1][:400]))
        incoming = self.incoming
        if incoming is not None:
            self.incoming = None
            gen, new = incoming
            old = self.chain
            try:
                y_new = self._run(new, master)
                y_old = self._run(old, master) if old is not None else master
                np.multiply(y_old, 1.0 - self._w, out=master)
                master += y_new * self._w
            except Exception:
                self.errors += 1
            self.chain, self.generation = new, gen
            self.latency = new.latency_frames
            self.ramps.clear()
            self.fading.clear()
            if old is not None:
                self.retired.append(old)
            self.wake()  # the loader destroys the old chain and looks for a newer request
            events.put(S.pack(S.EVT_MASTER_CHAIN, gen, 1, self.latency, ""))
            return
        chain = self.chain
        if chain is None:
            return
        try:
            if self.ramps:
                self._run_ramped(chain, master)
            elif self.fading:
                self._run_fading(chain, master)
            else:
                master[:] = self._run(chain, master)
        except Exception:  # a plugin refused this block: the master passes dry, counted
            self.errors += 1
            self.crumb[0] = 0

    def _run(self, chain: Chain, block: np.ndarray) -> np.ndarray:
        return chain.process(block, self.crumb)

    def _run_fading(self, chain: Chain, master: np.ndarray) -> None:
        master[:] = process_fading(chain, master, self.fading, self.crumb)
        self.fading.clear()

    def _run_ramped(self, chain: Chain, master: np.ndarray) -> None:
        """Process in RAMP_STEP-frame pieces while parameters glide (a step per block would zipper)."""
        n = master.shape[1]
        for s in range(0, n, RAMP_STEP):
            piece = master[:, s : s + RAMP_STEP]
            k = piece.shape[1]
            finished = None
            for key, r in self.ramps.items():  # r: [value, target, frames left]
                step = min(k, r[2])
                r[0] += (r[1] - r[0]) * step / r[2]
                r[2] -= step
                chain.plugins[key[0]].set(key[1], r[1] if r[2] <= 0 else r[0])
                if r[2] <= 0:
                    finished = [key] if finished is None else [*finished, key]
            if finished is not None:
                for key in finished:
                    del self.ramps[key]
            piece[:] = self._run(chain, np.ascontiguousarray(piece))


class Loader(threading.Thread):
    """Builds master chains for the callback (engine process, not real-time)."""

    def __init__(self, mc: MasterChain, instance: str, extra_dirs, block_size, on_swap=None) -> None:
        super().__init__(name="master-chain-loader", daemon=True)
        self.mc = mc
        self.path = chain_file(instance)
        self.extra_dirs = tuple(extra_dirs)
        self.block_size = block_size  # () -> the engine's current block size
        self.on_swap = on_swap  # (chain latency) -> None, once the callback plays a new chain
        self.built = 0
        self.stop = threading.Event()

    def close(self) -> None:
        self.stop.set()
        self.mc.wake()

    def run(self) -> None:
        mc = self.mc
        while not self.stop.is_set():
            os.read(mc._wake_r, 64)  # noqa: SLF001 — blocks, without the GIL, until the callback writes
            if self.stop.is_set():
                break
            while mc.retired:
                mc.retired.popleft().release()  # plugins are destroyed here, not in the callback
            want = mc.want
            if want == self.built or mc.incoming is not None:
                continue
            self.built = want
            try:
                spec = json.loads(self.path.read_text())
                if int(spec.get("gen", -1)) != want:
                    continue  # a newer one is on its way; its command follows
                chain = self.build(spec.get("chain") or [])
            except Exception as e:  # noqa: BLE001 — any failure is reported, the old chain plays on
                log.error("master chain %d could not be built: %s", want, e)
                mc.crumb[0] = 0
                mc.failed = (want, str(e) or type(e).__name__)
                continue
            mc.incoming = (want, chain)
            log.info("master chain %d ready: %s", want, ", ".join(p.name for p in chain.plugins) or "empty")
            for _ in range(400):  # the callback takes it at its next block
                if mc.incoming is None or self.stop.wait(0.005):
                    break
            if mc.incoming is None and self.on_swap is not None:
                try:
                    self.on_swap(chain.latency_frames)
                except Exception as e:  # noqa: BLE001 — reporting latency is not worth the engine
                    log.warning("could not report the master chain's latency to JACK: %s", e)

    def build(self, states: list[dict]) -> Chain:
        mc = self.mc
        chain = Chain.from_state(states, mc.rate, self.extra_dirs, mc.crumb)
        n = max(16, int(self.block_size()))
        z = np.zeros((2, n), dtype=np.float32)
        for i, p in enumerate(chain.plugins):  # first calls allocate and prepare: here, not in the callback
            mc.crumb[0] = i + 1
            for _ in range(2):
                p.process(z)
        mc.crumb[0] = 0
        return chain
