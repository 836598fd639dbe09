"""Track plugin chains on the control side: edits, parameters, bypass, and plugins that crashed a host.

Mixed into :class:`jackgen.daemon.control.control.Control`. Control keeps each chain as plugin
states in the session; whatever runs a chain (the producer feeding a track, the engine for the
master) gets changes pushed to it. A plugin is first loaded in a child process
(``jackgen.plugins.isolate``) so one that crashes or hangs cannot take control with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from jackgen.common.errors import JackgenError, check_track
from jackgen.daemon.control.session import live_chain, live_index
from jackgen.daemon.control.state import parse_on_off, track_id
from jackgen.plugins.base import resolve_file_params
from jackgen.plugins.host import Param, PluginError, check_order
from jackgen.plugins.isolate import instantiate_isolated

log = logging.getLogger("jackgen.control")


def _check_order(order: list[bool], name: str = "") -> None:
    """The chain's instruments in ``order`` (a plugin's flag each): only the first may be one."""
    try:
        check_order(order, name)
    except PluginError as e:
        raise JackgenError(str(e)) from None


class Chains:
    # ------------------------------------------------------------ plugin chains
    def chain_request(self, t: int) -> dict:
        """What a producer needs to run track t's chain (nothing when it has none)."""
        live = live_chain(self.tracks[t].chain)
        if not live:
            return {}
        lead = int(self.cfg.plugins.lead_ms * 1e-3 * (self.sample_rate or 48000))
        return {"chain": live, "lead_frames": lead, "vst3_dirs": list(self.cfg.plugins.vst3_dirs)}

    def _chain_target(self, track: object) -> tuple[int | None, list, str]:
        """(track index or None for the master, its chain list, how messages name it)."""
        if isinstance(track, str) and track.lower() == "master":
            return None, self.master["chain"], "the master"
        t = check_track(track)
        return t, self.tracks[t].chain, f"track {t + 1}"

    def _chain_index(self, track: object, index: object) -> tuple[int | None, list, int]:
        t, chain, label = self._chain_target(track)
        n = len(chain)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise JackgenError(f"{label} has no plugin {index!r} in its chain: it has {n}"
                               + (f" (0…{n - 1})" if n else ""), status=404 if isinstance(index, int) else 400)
        return t, chain, index

    async def _push_chain_change(self, t: int | None, change: dict) -> None:
        """Hand a change to whatever runs that chain now: the engine for the master, else whatever
        feeds track t (later streams get the chain with them)."""
        if t is None:
            await self._push_master_change(change)
            return
        s = self.streams.get(t)
        if s is None or s.finished.is_set():
            return
        chain = self.tracks[t].chain  # the producer runs it without failed plugins: its indices skip them
        if change["kind"] == "chain":
            change = {**change, "chain": live_chain(chain)}
        else:
            j = live_index(chain, change["index"])
            if j is None:
                return
            change = {**change, "index": j}
        target = self.feeder if s.producer is None else s.producer
        if target is not None:
            with contextlib.suppress(JackgenError):
                await target.send({"op": "chain", "track": t, "change": change})

    async def chain_add(self, track: object, plugin: object, params: object = None, index: object = None) -> dict:
        t, chain, label = self._chain_target(track)
        if not isinstance(plugin, str) or not plugin or len(plugin) > 4096 or "\0" in plugin:
            raise JackgenError("plugin must be a built-in name (Compressor, Reverb, …), a VST3 name or .vst3 path, "
                               "or an LV2 URI or name")
        if params is not None and not isinstance(params, dict):
            raise JackgenError("params must be an object of parameter name -> value")
        if len(chain) >= self.cfg.plugins.max_per_chain:
            raise JackgenError(f"{label} already has {len(chain)} plugins (plugins.max_per_chain)")
        # a file a plugin is to read (DrumGizmo's kit): only from the allowed folders
        params = resolve_file_params(params or {}, lambda v, k: self.media.resolve(v, f"{plugin} {k}"))
        try:  # loaded in a child process: a plugin that crashes or hangs cannot take control with it
            info = await asyncio.to_thread(instantiate_isolated, plugin, params, self.cfg.plugins.vst3_dirs,
                                           self.cfg.plugins.scan_timeout_s)
        except PluginError as e:
            self.plugin_load_failures += 1
            raise JackgenError(str(e)) from None
        state = {**info["state"], "param_info": info["params"], "dual_mono": info["dual_mono"],
                 "latency_frames": info["latency_frames"], "instrument": bool(info.get("instrument"))}
        at = len(chain) if index is None else max(0, min(int(index), len(chain)))
        if state["instrument"] and t is None:
            raise JackgenError(f"{state['name']} is an instrument: the master chain takes effects only")
        order = [bool(e.get("instrument")) for e in chain]
        order.insert(at, state["instrument"])
        _check_order(order, state["name"])
        async with self._chain_edit(t, chain):
            chain.insert(at, state)
            await self._push_chain_change(t, {"kind": "chain", "chain": chain})
        log.info("%s: %s added to the chain at %d", label, state["name"], at)
        return {"track": track_id(t), "index": at, "chain": self.chain_list(track_id(t))["chain"]}

    async def chain_remove(self, track: object, index: object) -> dict:
        t, chain, i = self._chain_index(track, index)
        async with self._chain_edit(t, chain):
            removed = chain.pop(i)
            await self._push_chain_change(t, {"kind": "chain", "chain": chain})
        return {"track": track_id(t), "removed": removed["name"], "chain": self.chain_list(track_id(t))["chain"]}

    async def chain_move(self, track: object, index: object, to: object) -> dict:
        t, chain, i = self._chain_index(track, index)
        if isinstance(to, bool) or not isinstance(to, int):
            raise JackgenError("to must be a chain position (int)")
        order = [bool(e.get("instrument")) for e in chain]
        order.insert(max(0, min(to, len(chain) - 1)), order.pop(i))
        _check_order(order)
        async with self._chain_edit(t, chain):
            chain.insert(max(0, min(to, len(chain) - 1)), chain.pop(i))
            await self._push_chain_change(t, {"kind": "chain", "chain": chain})
        return self.chain_list(track_id(t))

    async def chain_bypass(self, track: object, index: object, on: object, at_frame: int | None = None) -> dict:
        t, chain, i = self._chain_index(track, index)
        flag = parse_on_off(on, "bypass")
        chain[i]["bypass"] = flag
        self.save_session()
        await self._push_chain_change(t, {"kind": "bypass", "index": i, "on": flag, **self._stream_at(t, at_frame)})
        return {"track": track_id(t), "index": i, "bypass": flag}

    async def chain_param(self, track: object, index: object, name: object, value: object,
                          at_frame: int | None = None) -> dict:
        t, chain, i = self._chain_index(track, index)
        entry = chain[i]
        if name == "preset":
            raise JackgenError(f"{entry['name']}: a preset is chosen when the plugin is added "
                               "(chain add PLUGIN --param preset=NAME)")
        try:
            spec = self._chain_param_spec(entry, name)
            if spec.kind == "path":  # a file the plugin reads (a drum kit): only from the allowed folders
                value = str(self.media.resolve(value, f"{entry['name']} {name}"))
            value = spec.check(entry["name"], value)
        except PluginError as e:
            raise JackgenError(str(e)) from None
        entry.setdefault("params", {})[name] = value
        self.save_session()
        await self._push_chain_change(t, {"kind": "param", "index": i, "name": name, "value": value,
                                          **self._stream_at(t, at_frame)})
        return {"track": track_id(t), "index": i, "param": name, "value": value}

    def _chain_param_spec(self, entry: dict, name: object):
        """The parameter's range, unit and choices as the plugin reported them when it was added."""
        info = {p["name"]: p for p in entry.get("param_info", [])}
        if not isinstance(name, str) or name not in info:
            raise JackgenError(f"{entry['name']} has no parameter {name!r}; it has {', '.join(info)}")
        p = info[name]
        return Param(p["name"], p["min"], p["max"], p.get("default"), p.get("unit") or "", tuple(p.get("choices") or ()),
                     p.get("kind") or "number")

    @contextlib.asynccontextmanager
    async def _chain_edit(self, t: int | None, chain: list):
        """A structural change: saved once it took; on the master, one at a time, and undone
        if the engine could not build the new chain."""
        if t is not None:
            yield
            self.save_session()
            return
        async with self._master_lock:
            before = list(chain)
            try:
                yield
            except BaseException:
                chain[:] = before
                raise
            self.save_session()

    def _stream_at(self, t: int, at_frame: int | None) -> dict:
        """An engine frame as a frame of track t's stream (what the producer counts), if it is known."""
        if t is None or at_frame is None or self.tracks[t].started_frame is None:
            return {}
        tr = self.tracks[t]
        return {"at": max(0, int(at_frame) - int(tr.started_frame))}

    def chain_list(self, track: object) -> dict:
        t, chain, _ = self._chain_target(track)
        out = []
        for i, c in enumerate(chain):
            d = {"index": i, "name": c["name"], "plugin": c["plugin"], "kind": c["kind"],
                 "bypass": c.get("bypass", False), "dual_mono": c.get("dual_mono", False),
                 "instrument": bool(c.get("instrument")), "latency_frames": c.get("latency_frames", 0),
                 "params": c.get("params", {})}
            if c.get("failed"):
                d["failed"] = c["failed"]
            out.append(d)
        return {"track": track_id(t), "chain": out}

    def check_crumb(self, role: str, code: int | None) -> None:
        """A plugin host died (``role``: engine, feeder, worker-<backend>) or a new engine says hello:
        each plugin its crumb still names is marked failed (kept in the session, shown in the chain
        list), so the restarted process runs the chain without it."""
        words = self.crumbs.get(role)
        if words is None:
            return
        for t, v in enumerate(words.tolist()):
            if not v:
                continue
            words[t] = 0
            chain = self.master["chain"] if role == "engine" else self.tracks[t].chain
            live = live_chain(chain)
            j = v - 1 if v > 0 else -v - 1
            if not 0 <= j < len(live):
                continue
            entry = live[j]
            how = ""
            if code is not None and code < 0:
                with contextlib.suppress(ValueError):
                    how = f" ({signal.Signals(-code).name})"
            i = chain.index(entry)
            owner = "master" if role == "engine" else str(t + 1)
            entry["failed"] = (f"crashed the {role.replace('-', ' ')}{how} while "
                               f"{'processing audio' if v > 0 else 'loading'}; the chain runs without it "
                               f"(remove it: jackgen chain {owner} remove {i})")
            self.plugin_load_failures += v <= 0  # a crash while loading, not while processing
            log.error("%s plugin %d (%s) %s", "master" if role == "engine" else f"track {t + 1}", i,
                      entry["name"], entry["failed"])
            self.save_session()
