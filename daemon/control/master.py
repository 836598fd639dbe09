"""The master bus on the control side: the mastering section's settings and the master plugin chain,
which the engine runs (built on its loader thread from a file control writes, swapped in at a block).

Mixed into :class:`jackgen.daemon.control.control.Control`.
"""

from __future__ import annotations

import asyncio
import math

from jackgen.bridge import schema as S
from jackgen.common.errors import JackgenError
from jackgen.common.files import atomic_write_json
from jackgen.daemon.control.session import live_chain, live_index
from jackgen.daemon.engine.masterchain import chain_file
from jackgen.dsp.master import EQ_BANDS, EQ_TYPES, BandError, check_band, master_latency
from jackgen.dsp.mix import MAX_GAIN_DB, MIN_GAIN_DB

import logging

log = logging.getLogger("jackgen.control")


class Master:
    # ---------------------------------------------------------------- mastering
    def _send_master(self) -> None:
        self.send(S.CMD_MASTER_GAIN, float(self.master["gain_db"]))
        for b, band in enumerate(self.master["eq"]):
            self.send(S.CMD_MASTER_EQ, b, EQ_TYPES[band["type"]], band["freq"], band["gain_db"], band["q"])

    def master_info(self) -> dict:
        e = self.cfg.engine
        rate = self.sample_rate or 48000
        return {"gain_db": self.master["gain_db"], "eq": self.master["eq"], "chain": self.chain_list("master")["chain"],
                "ceiling_dbtp": e.limiter_ceiling_db, "release_ms": e.limiter_release_ms,
                "latency_frames": master_latency(rate, e.limiter_lookahead_ms) + self.master_chain_latency}

    def _engine_chain(self) -> list[dict]:
        """The master chain as the engine runs it: without plugins marked failed."""
        return live_chain(self.master["chain"])

    async def _push_master_change(self, change: dict) -> None:
        if change["kind"] == "chain":  # _chain_edit holds the lock
            await self._send_master_chain()
            return
        async with self._master_lock:  # after any rebuild in flight, so the indices are the new chain's
            j = live_index(self.master["chain"], change["index"])
            if j is None or not self.engine_alive():
                return
            if change["kind"] == "param":
                self.send(S.CMD_MASTER_PARAM, self._master_gen, j, change["name"], change["value"])
            else:
                self.send(S.CMD_MASTER_BYPASS, self._master_gen, j, int(change["on"]))

    async def _send_master_chain(self, timeout_s: float = 60.0) -> None:
        """Have the engine build the master chain and wait until it plays (or say why not)."""
        if not self.engine_alive():
            return  # sent when the engine says hello
        self._master_gen += 1
        gen = self._master_gen
        atomic_write_json(chain_file(self.cfg.instance), {"gen": gen, "chain": self._engine_chain()})
        fut = asyncio.get_running_loop().create_future()
        self._master_waits[gen] = fut
        try:
            self.send(S.CMD_MASTER_CHAIN, gen)
            ok, _latency, err = await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            raise JackgenError(f"the engine did not take the new master chain within {timeout_s:.0f} s",
                               status=503) from None
        finally:
            self._master_waits.pop(gen, None)
        if not ok:
            raise JackgenError(f"the engine could not build the master chain: {err}", status=503)

    async def _replay_master_chain(self) -> None:
        async with self._master_lock:
            try:
                await self._send_master_chain()
            except JackgenError as e:
                log.error("restoring the master chain: %s", e)

    def set_master(self, gain_db: object = None, eq: object = None) -> dict:
        """Makeup gain (dB) and/or EQ bands ([{band 1-4, type, freq, gain_db, q}, …]); all checked before any applies."""
        if gain_db is None and eq is None:
            raise JackgenError("nothing to set: give gain_db and/or eq")
        new_gain = self.master["gain_db"]
        if gain_db is not None:
            if isinstance(gain_db, bool) or not isinstance(gain_db, (int, float)) or not math.isfinite(gain_db):
                raise JackgenError(f"master gain_db must be a number, got {gain_db!r}")
            if not MIN_GAIN_DB <= gain_db <= MAX_GAIN_DB:
                raise JackgenError(f"master gain_db must be between {MIN_GAIN_DB:g} and {MAX_GAIN_DB:g}, got {gain_db:g}")
            new_gain = float(gain_db)
        bands = [dict(b) for b in self.master["eq"]]
        if eq is not None:
            if isinstance(eq, dict):
                eq = [eq]
            if not isinstance(eq, list) or not eq:
                raise JackgenError("eq must be a list of bands: [{band: 1-4, type, freq, gain_db, q}]")
            for item in eq:
                if not isinstance(item, dict):
                    raise JackgenError(f"an EQ band is an object, got {item!r}")
                b = item.get("band")
                if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= EQ_BANDS:
                    raise JackgenError(f"EQ band must be 1-{EQ_BANDS}, got {b!r}")
                merged = {**bands[b - 1], **{k: v for k, v in item.items() if k != "band"}}
                try:
                    bands[b - 1] = check_band(merged)
                except BandError as e:
                    raise JackgenError(f"EQ band {b}: {e}") from None
        self.master = {**self.master, "gain_db": new_gain, "eq": bands}
        self._send_master()
        self.save_session()
        return self.master_info()
