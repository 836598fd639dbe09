"""LV2 plugins — effects and instruments — behind the same surface as VST3 ones (``host.Plugin``).

Plugins are found by URI (``http://synthv1.sourceforge.net/lv2``, ``urn:zamaudio:ZamCompX2``) or by
name ("synthv1", "Dragonfly Room Reverb", or the URI's last part) in the LV2 path: lilv's default
(``~/.lv2``, ``/usr/local/lib/lv2``, ``/usr/lib/lv2``) or ``LV2_PATH``. The binding is
``jackgen.plugins._lv2`` (cffi over liblilv-0, with the host features in C: urid map, options,
block-length guarantees, a synchronous worker, log).

- **Ports**: audio in/out, control in (the parameters, by port symbol, with their range and unit),
  control out (read after each block; the latency port gives ``latency_frames``), atom-sequence
  inputs that take MIDI (an instrument's notes), atom outputs (given room, ignored), CV (silence).
- **Channels**: 2 in / 2 out as is; 1 in / 1 out as dual mono (two instances, parameters in
  step), as VST3 mono effects are; 1 in / 2 out takes the mid (L+R)/2; one output plays on both
  sides; an instrument with more than two outputs (DrumGizmo's kit channels) is mixed to both.
- **State**: the plugin's own state (``state:interface``) with its port values, as the Turtle
  text lilv writes (``lv2_state``), plus the parameters; ``from_state`` restores both.
- **Presets**: a plugin's presets (``pset:Preset``) are listed by label; the ``preset`` value
  of ``set`` loads one.

Threading as for VST3 plugins: every load and state restore runs on the process's one plugin
loader thread (lilv's world is not thread-safe); ``process`` runs on the thread that owns the
chain.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jackgen.plugins.base import Param, PluginError, on_loader

LV2 = "http://lv2plug.in/ns/lv2core#"
ATOM = "http://lv2plug.in/ns/ext/atom#"
URIS = {
    "audio": LV2 + "AudioPort", "control": LV2 + "ControlPort", "input": LV2 + "InputPort",
    "output": LV2 + "OutputPort", "cv": LV2 + "CVPort", "atom": ATOM + "AtomPort",
    "midi_event": "http://lv2plug.in/ns/ext/midi#MidiEvent", "instrument": LV2 + "InstrumentPlugin",
    "latency": LV2 + "latency", "freewheeling": LV2 + "freeWheeling", "reports_latency": LV2 + "reportsLatency", "designation": LV2 + "designation",
    "toggled": LV2 + "toggled", "integer": LV2 + "integer", "enumeration": LV2 + "enumeration",
    "optional": LV2 + "connectionOptional", "side_chain": LV2 + "isSideChain", "sample_rate": LV2 + "sampleRate",
    "unit": "http://lv2plug.in/ns/extensions/units#unit", "preset": "http://lv2plug.in/ns/ext/presets#Preset",
    "label": "http://www.w3.org/2000/01/rdf-schema#label", "min_size": "http://lv2plug.in/ns/ext/resize-port#minimumSize",
}
UNITS = {"db": "dB", "hz": "Hz", "khz": "kHz", "ms": "ms", "s": "s", "pc": "%", "coef": "", "bpm": "BPM",
         "semitone12TET": "semitones", "cent": "cents", "midiNote": "note", "frame": "frames", "degree": "°",
         "beat": "beats", "oct": "octaves", "min": "min"}
MAX_BLOCK = 4096  # the longest run(); longer blocks are cut in pieces
SEQ_BYTES = 16384  # each atom port's buffer (the sequenceSize option)
URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^/\\]")  # urn:…, http:/…: not a file path


# Qt-based plugins (synthv1, samplv1, drumkv1) start a Qt application at instantiation; with no
# display that aborts the process unless Qt is told to draw nowhere. jackgen is headless.
if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def looks_like_uri(s: str) -> bool:
    return bool(URI_RE.match(s)) or s.startswith(("http://", "https://"))


def available() -> bool:
    try:
        from jackgen.plugins import _lv2  # noqa: F401  (built, or not)
    except ImportError:
        return False
    return True


def _lib():
    try:
        from jackgen.plugins._lv2 import ffi, lib
    except ImportError as e:  # built at install when liblilv-dev is there
        raise PluginError(f"LV2 hosting is not built into this install ({e}): install liblilv-dev and "
                          "reinstall jackgen (scripts/setup.sh does both)") from None
    return ffi, lib


def _str(ffi, p) -> str:
    return ffi.string(p).decode("utf-8", "replace") if p != ffi.NULL else ""


@dataclass
class PortInfo:
    index: int
    symbol: str
    name: str
    kind: str  # audio | control | atom | cv | other
    is_input: bool
    min: float | None = None
    max: float | None = None
    default: float | None = None
    unit: str = ""
    toggled: bool = False
    integer: bool = False
    midi: bool = False
    latency: bool = False
    freewheel: bool = False  # lv2:freeWheeling: 1 here (a producer ahead of the playhead may take its time)
    optional: bool = False
    side_chain: bool = False
    scale: dict[str, float] = field(default_factory=dict)
    min_size: int = 0


class _World:
    """lilv's world: every bundle in the LV2 path, read once a process (on the loader thread)."""

    def __init__(self) -> None:
        ffi, lib = _lib()
        self.ffi, self.lib = ffi, lib
        self.w = lib.lilv_world_new()
        lib.lilv_world_load_all(self.w)
        self.n = {k: lib.lilv_new_uri(self.w, v.encode()) for k, v in URIS.items()}
        self.plugins = lib.lilv_world_get_all_plugins(self.w)
        self.path = os.environ.get("LV2_PATH") or "~/.lv2:/usr/local/lib/lv2:/usr/lib/lv2"

    def all(self) -> list:
        lib, out = self.lib, []
        it = lib.lilv_plugins_begin(self.plugins)
        while not lib.lilv_plugins_is_end(self.plugins, it):
            out.append(lib.lilv_plugins_get(self.plugins, it))
            it = lib.lilv_plugins_next(self.plugins, it)
        return out

    def uri(self, p) -> str:
        return _str(self.ffi, self.lib.lilv_node_as_uri(self.lib.lilv_plugin_get_uri(p)))

    def name(self, p) -> str:
        node = self.lib.lilv_plugin_get_name(p)
        try:
            return _str(self.ffi, self.lib.lilv_node_as_string(node)) if node != self.ffi.NULL else self.uri(p)
        finally:
            if node != self.ffi.NULL:
                self.lib.lilv_node_free(node)

    def find(self, uri_or_name: str):
        """A plugin by exact URI, or by name / the URI's last part (case-insensitive)."""
        lib, ffi = self.lib, self.ffi
        if looks_like_uri(uri_or_name):
            node = lib.lilv_new_uri(self.w, uri_or_name.encode())
            p = lib.lilv_plugins_get_by_uri(self.plugins, node)
            lib.lilv_node_free(node)
            if p != ffi.NULL:
                return p
        want = uri_or_name.strip().lower()
        every = self.all()
        for p in every:
            u = self.uri(p)
            if self.name(p).lower() == want or re.split(r"[/#:]", u.rstrip("/#"))[-1].lower() == want:
                return p
        names = sorted(self.name(p) for p in every)
        near = [n for n in names if want and want[:4] in n.lower()][:8] or names[:12]
        raise PluginError(f"no LV2 plugin {uri_or_name!r} in the LV2 path ({self.path}; {len(names)} plugins"
                          + (f", e.g. {', '.join(near)}" if near else "") + "): `jackgen plugins list` shows them all")

    def _value(self, p, port, key) -> str | None:
        lib, ffi = self.lib, self.ffi
        nodes = lib.lilv_port_get_value(p, port, self.n[key])
        try:
            if nodes == ffi.NULL or lib.lilv_nodes_size(nodes) == 0:
                return None
            first = lib.lilv_nodes_get_first(nodes)
            return _str(ffi, lib.lilv_node_as_string(first))
        finally:
            if nodes != ffi.NULL:
                lib.lilv_nodes_free(nodes)

    def ports(self, p) -> list[PortInfo]:
        lib, ffi, n = self.lib, self.ffi, self.n
        out = []
        for i in range(lib.lilv_plugin_get_num_ports(p)):
            port = lib.lilv_plugin_get_port_by_index(p, i)
            is_a = lambda k: bool(lib.lilv_port_is_a(p, port, n[k]))  # noqa: E731
            kind = ("audio" if is_a("audio") else "control" if is_a("control") else "atom" if is_a("atom")
                    else "cv" if is_a("cv") else "other")
            name_node = lib.lilv_port_get_name(p, port)
            info = PortInfo(i, _str(ffi, lib.lilv_node_as_string(lib.lilv_port_get_symbol(p, port))),
                            _str(ffi, lib.lilv_node_as_string(name_node)) if name_node != ffi.NULL else "",
                            kind, is_a("input"))
            if name_node != ffi.NULL:
                lib.lilv_node_free(name_node)
            has = lambda k: bool(lib.lilv_port_has_property(p, port, n[k]))  # noqa: E731
            info.optional = has("optional")
            info.side_chain = has("side_chain")
            if kind == "control":
                d, lo, hi = ffi.new("LilvNode**"), ffi.new("LilvNode**"), ffi.new("LilvNode**")
                lib.lilv_port_get_range(p, port, d, lo, hi)
                vals = []
                for node in (d[0], lo[0], hi[0]):
                    vals.append(float(lib.lilv_node_as_float(node)) if node != ffi.NULL else None)
                    if node != ffi.NULL:
                        lib.lilv_node_free(node)
                info.default, info.min, info.max = vals
                scale = has("sample_rate")
                if scale:  # ranges given as a fraction of the sample rate: filled in at load
                    info.unit = "×rate"
                info.toggled, info.integer = has("toggled"), has("integer")
                designation = self._value(p, port, "designation")
                info.latency = has("reports_latency") or designation == URIS["latency"]
                info.freewheel = designation == URIS["freewheeling"]
                unit = self._value(p, port, "unit")
                if unit and not scale:
                    tail = unit.rsplit("#", 1)[-1]
                    info.unit = UNITS.get(tail, tail)
                points = lib.lilv_port_get_scale_points(p, port)
                if points != ffi.NULL:
                    it = lib.lilv_scale_points_begin(points)
                    while not lib.lilv_scale_points_is_end(points, it):
                        sp = lib.lilv_scale_points_get(points, it)
                        info.scale[_str(ffi, lib.lilv_node_as_string(lib.lilv_scale_point_get_label(sp)))] = float(
                            lib.lilv_node_as_float(lib.lilv_scale_point_get_value(sp)))
                        it = lib.lilv_scale_points_next(points, it)
                    lib.lilv_scale_points_free(points)
            elif kind == "atom":
                info.midi = bool(lib.lilv_port_supports_event(p, port, n["midi_event"]))
                size = self._value(p, port, "min_size")
                info.min_size = int(float(size)) if size else 0
            out.append(info)
        return out

    def is_instrument(self, p, ports: list[PortInfo]) -> bool:
        cls = _str(self.ffi, self.lib.lilv_node_as_uri(self.lib.lilv_plugin_class_get_uri(self.lib.lilv_plugin_get_class(p))))
        audio_in = [q for q in ports if q.kind == "audio" and q.is_input]
        midi_in = [q for q in ports if q.kind == "atom" and q.is_input and q.midi]
        return bool(midi_in) and (cls == URIS["instrument"] or not audio_in)

    def presets(self, p) -> dict[str, str]:
        """label -> preset URI."""
        lib, ffi = self.lib, self.ffi
        out = {}
        nodes = lib.lilv_plugin_get_related(p, self.n["preset"])
        if nodes == ffi.NULL:
            return out
        it = lib.lilv_nodes_begin(nodes)
        while not lib.lilv_nodes_is_end(nodes, it):
            node = lib.lilv_nodes_get(nodes, it)
            lib.lilv_world_load_resource(self.w, node)
            labels = lib.lilv_world_find_nodes(self.w, node, self.n["label"], ffi.NULL)
            uri = _str(ffi, lib.lilv_node_as_uri(node))
            label = uri.rsplit("#", 1)[-1]
            if labels != ffi.NULL:
                if lib.lilv_nodes_size(labels):
                    label = _str(ffi, lib.lilv_node_as_string(lib.lilv_nodes_get_first(labels)))
                lib.lilv_nodes_free(labels)
            out[label] = uri
            it = lib.lilv_nodes_next(nodes, it)
        lib.lilv_nodes_free(nodes)
        return out

    def describe(self, p) -> dict:
        ports = self.ports(p)
        return {
            "format": "lv2", "uri": self.uri(p), "name": self.name(p), "instrument": self.is_instrument(p, ports),
            "audio_inputs": sum(q.kind == "audio" and q.is_input and not q.side_chain for q in ports),
            "audio_outputs": sum(q.kind == "audio" and not q.is_input for q in ports),
            "midi_input": any(q.kind == "atom" and q.is_input and q.midi for q in ports),
            "params": [_param(q, 48000.0).to_dict() for q in ports if q.kind == "control" and q.is_input
                       and not q.freewheel] + ([Param(k, None, None, "", "", (), "path").to_dict() for k in DG_FILES]
                                               if self.uri(p) == DRUMGIZMO else []),
            "presets": sorted(self.presets(p)),
        }


_WORLD: _World | None = None
_WORLD_LOCK = threading.Lock()


def world() -> _World:
    global _WORLD
    with _WORLD_LOCK:
        if _WORLD is None:
            _WORLD = _World()
    return _WORLD


def scan() -> dict:
    """Every LV2 plugin in the path, described (metadata only: no plugin code runs)."""
    def run() -> dict:
        w = world()
        return {"path": w.path, "plugins": [w.describe(p) for p in sorted(w.all(), key=w.uri)]}

    return on_loader(run)


DRUMGIZMO = "http://drumgizmo.org/lv2"
DG_FILES = ("drumkitfile", "midimapfile")  # DrumGizmo's kit and its MIDI note map, as parameters
_DG_BLOB = re.compile(r'(<http://drumgizmo\.org/lv2/atom#config>\s*""")(.*?)("""\^\^xsd:base64Binary)', re.S)


def _dg_config(ttl: str) -> tuple[tuple[int, int], dict[str, str]]:
    """Where DrumGizmo's config sits in a state's Turtle, and its values."""
    import xml.etree.ElementTree as ET

    m = _DG_BLOB.search(ttl)
    if not m:
        raise PluginError("DrumGizmo's state holds no config")
    root = ET.fromstring(base64.b64decode(m.group(2)))
    return (m.start(2), m.end(2)), {v.get("name"): (v.text or "") for v in root.iter("value")}


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _param(q: PortInfo, rate: float) -> Param:
    lo, hi, d = q.min, q.max, q.default
    if q.unit == "×rate":
        lo, hi, d = (None if v is None else v * rate for v in (lo, hi, d))
    if q.toggled:
        lo, hi = 0.0, 1.0
    if d is None:
        d = lo if lo is not None else 0.0
    unit = "Hz" if q.unit == "×rate" else q.unit
    return Param(q.symbol, lo, hi, float(d), unit)


class _Instance:
    """One instantiated LV2 plugin with its port buffers (connected once)."""

    def __init__(self, w: _World, p, ports: list[PortInfo], rate: float) -> None:
        ffi, lib = w.ffi, w.lib
        self.ffi, self.lib = ffi, lib
        err = ffi.new("char[]", 512)
        self.h = lib.jg_lv2_new(w.w, p, float(rate), MAX_BLOCK, SEQ_BYTES, err, 512)
        if self.h == ffi.NULL:
            raise PluginError(f"{w.name(p)} ({w.uri(p)}) could not be loaded: {_str(ffi, err)}")
        self.audio_in = [q for q in ports if q.kind == "audio" and q.is_input and not q.side_chain]
        side = [q for q in ports if q.kind == "audio" and q.is_input and q.side_chain]
        self.audio_out = [q for q in ports if q.kind == "audio" and not q.is_input]
        self.ctl_in = [q for q in ports if q.kind == "control" and q.is_input]
        self.ctl_out = [q for q in ports if q.kind == "control" and not q.is_input]
        self._keep: list = []
        buf = lambda n: self._keep_buf(ffi.new("float[]", n))  # noqa: E731
        self.ins = [buf(MAX_BLOCK) for _ in self.audio_in]
        self.outs = [buf(MAX_BLOCK) for _ in self.audio_out]
        self.in_np = [np.frombuffer(ffi.buffer(b), dtype=np.float32) for b in self.ins]
        self.out_np = [np.frombuffer(ffi.buffer(b), dtype=np.float32) for b in self.outs]
        for q, b in zip(self.audio_in, self.ins):
            lib.jg_lv2_connect(self.h, q.index, b)
        self._side = buf(MAX_BLOCK)  # side-chain inputs hear silence
        for q in side:
            lib.jg_lv2_connect(self.h, q.index, self._side)
        for q, b in zip(self.audio_out, self.outs):
            lib.jg_lv2_connect(self.h, q.index, b)
        self.ctl = ffi.new("float[]", max(1, len(self.ctl_in)))
        self.ctl_out_vals = ffi.new("float[]", max(1, len(self.ctl_out)))
        for i, q in enumerate(self.ctl_in):
            self.ctl[i] = 1.0 if q.freewheel else _param(q, rate).default
            lib.jg_lv2_connect(self.h, q.index, self.ctl + i)
        for i, q in enumerate(self.ctl_out):
            lib.jg_lv2_connect(self.h, q.index, self.ctl_out_vals + i)
        self._syms = [ffi.new("char[]", q.symbol.encode()) for q in self.ctl_in]
        self._sym_arr = ffi.new("char*[]", self._syms or [ffi.NULL])
        self._idx = ffi.new("uint32_t[]", [q.index for q in self.ctl_in] or [0])
        lib.jg_lv2_set_controls(self.h, len(self.ctl_in), self._idx, self._sym_arr, self.ctl)
        self.atom_in, self.atom_out = [], []
        for q in ports:
            if q.kind == "atom":
                size = max(SEQ_BYTES, q.min_size)
                b = ffi.new("uint8_t[]", size)
                (self.atom_in if q.is_input else self.atom_out).append((q, b, size))
                lib.jg_lv2_connect(self.h, q.index, b)
                if q.is_input:
                    lib.jg_lv2_seq_clear(b, size)
        self.midi_port = next(((b, size) for q, b, size in self.atom_in if q.midi), None)
        for q in ports:  # CV inputs hear silence; CV outputs go nowhere
            if q.kind == "cv":
                lib.jg_lv2_connect(self.h, q.index, buf(MAX_BLOCK))
        for q in ports:
            if q.kind == "other" and not q.optional:
                lib.jg_lv2_free(self.h)
                raise PluginError(f"{w.name(p)}: port {q.symbol!r} is of a kind jackgen cannot connect")
            if q.kind == "other":
                lib.jg_lv2_connect(self.h, q.index, ffi.NULL)
        self.latency_i = next((i for i, q in enumerate(self.ctl_out) if q.latency), None)
        self.active = False  # activated by the first run(), once the parameters are set (some read them then)

    def _keep_buf(self, b):
        self._keep.append(b)
        return b

    def run(self, inputs: list[np.ndarray], n: int, midi: list[tuple[int, bytes]] | None = None) -> list[np.ndarray]:
        """``inputs``: one (n,) array per audio input; returns one (n,) copy per audio output."""
        lib = self.lib
        if not self.active:
            lib.lilv_instance_activate(lib.jg_lv2_instance(self.h))
            self.active = True
        for dst, src in zip(self.in_np, inputs):
            dst[:n] = src[:n]
        for _q, b, size in self.atom_in:
            lib.jg_lv2_seq_clear(b, size)
        if midi and self.midi_port is not None:
            b, size = self.midi_port
            for off, data in midi:
                lib.jg_lv2_seq_add(b, size, int(off), data, len(data))
        for _q, b, size in self.atom_out:
            lib.jg_lv2_seq_prepare_out(b, size)
        lib.jg_lv2_run(self.h, n)
        return [o[:n].copy() for o in self.out_np]

    @property
    def latency(self) -> int:
        return 0 if self.latency_i is None else max(0, int(round(self.ctl_out_vals[self.latency_i])))

    def reset(self) -> None:
        """Deactivate: the next run() activates it again, its DSP fresh (as the LV2 spec has it)."""
        if self.active:
            self.lib.lilv_instance_deactivate(self.lib.jg_lv2_instance(self.h))
            self.active = False

    def close(self) -> None:
        if self.h is not None and self.h != self.ffi.NULL:
            self.reset()
            self.lib.jg_lv2_free(self.h)
            self.h = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class Lv2Plugin:
    """One LV2 effect or instrument in a chain, stereo out (see the module's notes)."""

    kind = "lv2"

    def __init__(self, uri_or_name: str, sample_rate: float, extra_dirs=()) -> None:
        on_loader(self._load, uri_or_name, float(sample_rate))

    def _load(self, uri_or_name: str, rate: float) -> None:
        w = world()
        self.sample_rate = rate
        self.bypass = False
        self._p = w.find(uri_or_name)
        self.uri = w.uri(self._p)
        self.path = self.uri
        self.name = w.name(self._p)
        self.ports = w.ports(self._p)
        self.instrument = w.is_instrument(self._p, self.ports)
        self._presets = w.presets(self._p)
        self.params = {q.symbol: _param(q, rate) for q in self.ports
                       if q.kind == "control" and q.is_input and not q.freewheel}
        self._drumgizmo = self.uri == DRUMGIZMO
        if self._drumgizmo:
            self.params.update({k: Param(k, None, None, "", "", (), "path") for k in DG_FILES})
        if self._presets:
            self.params["preset"] = Param("preset", None, None, "", "", tuple(self._presets))
        self._preset = ""
        n_in = sum(q.kind == "audio" and q.is_input and not q.side_chain for q in self.ports)
        n_out = sum(q.kind == "audio" and not q.is_input for q in self.ports)
        if n_out == 0:
            raise PluginError(f"{self.name} ({self.uri}) has no audio output: a chain needs audio out")
        if n_in > 2 and not self.instrument:
            raise PluginError(f"{self.name} has {n_in} audio inputs: jackgen hosts mono and stereo effects")
        if self.instrument and n_in:
            n_in = 0  # a synth with a side-chain or audio input: fed nothing
        self.dual_mono = n_in == 1 and n_out == 1
        self._insts = [_Instance(w, self._p, self.ports, rate)]
        if self.dual_mono:
            self._insts.append(_Instance(w, self._p, self.ports, rate))
        self._n_in = n_in
        self._silence = np.zeros(MAX_BLOCK, dtype=np.float32)
        for inst in self._insts:  # a plugin reports its latency from run(): one silent block, then a reset
            inst.run([self._silence] * len(inst.audio_in), 64)
            inst.reset()  # (deactivated: the first real block activates it again, its DSP fresh)

    # ----------------------------------------------------------------- parameters
    def _index(self, name: str) -> int:
        for i, q in enumerate(self._insts[0].ctl_in):
            if q.symbol == name:
                return i
        raise PluginError(f"{self.name} has no parameter {name!r}; it has {', '.join(self.params)}")

    def set(self, name: str, value: Any) -> Any:
        p = self.params.get(name)
        if p is None:
            raise PluginError(f"{self.name} has no parameter {name!r}; it has {', '.join(self.params)}")
        v = p.check(self.name, value)
        if name == "preset":
            self._load_preset(v)
            return v
        if p.kind == "path":
            self._drumgizmo_set(name, v)
            return v
        i = self._index(name)
        for inst in self._insts:
            inst.ctl[i] = float(v)
        return float(self._insts[0].ctl[i])

    def get(self, name: str) -> Any:
        if name == "preset" and "preset" in self.params:
            return self._preset
        if self._drumgizmo and name in DG_FILES:
            return _dg_config(self._save())[1].get(name, "")
        return float(self._insts[0].ctl[self._index(name)])

    def _load_preset(self, label: str) -> None:
        uri = self._presets[label]

        def apply() -> None:
            for inst in self._insts:
                if inst.lib.jg_lv2_preset_apply(inst.h, uri.encode()) != 0:
                    raise PluginError(f"{self.name}: preset {label!r} could not be loaded")

        on_loader(apply)
        self._preset = label

    @property
    def latency_frames(self) -> int:
        if self._drumgizmo and not self._drumgizmo_resamples():
            return 0  # DrumGizmo 0.9 reports its resampler's delay (144) even when it delays nothing
        return self._insts[0].latency

    def _drumgizmo_resamples(self) -> bool:
        """Whether DrumGizmo's kit is at another rate than the host's (its resampler then runs)."""
        import xml.etree.ElementTree as ET

        kit = self.get("drumkitfile")
        try:
            rate = float(ET.parse(kit).getroot().get("samplerate") or 44100) if kit else self.sample_rate
        except (OSError, ET.ParseError, ValueError):
            return True
        return rate != self.sample_rate

    # ----------------------------------------------------------------- audio
    def process(self, block: np.ndarray, midi: list[tuple[int, bytes]] | None = None) -> np.ndarray:
        """(2, n) float32 -> (2, n) float32. ``midi``: (frame offset in the block, bytes) for an
        instrument, sorted; the audio in is then ignored."""
        if self.bypass and not self.instrument:
            return block
        n = block.shape[1]
        if n > MAX_BLOCK:  # cut in pieces, the MIDI with them
            parts = []
            for s in range(0, n, MAX_BLOCK):
                e = min(n, s + MAX_BLOCK)
                sub = [(o - s, d) for o, d in (midi or ()) if s <= o < e]
                parts.append(self.process(block[:, s:e], sub))
            return np.concatenate(parts, axis=1)
        a = self._insts[0]
        if self.dual_mono:
            left = a.run([block[0]], n)[0]
            right = self._insts[1].run([block[1]], n)[0]
            return np.stack([left, right])
        if self._n_in == 2:
            ins = [block[0], block[1]]
        elif self._n_in == 1:
            ins = [(block[0] + block[1]) * 0.5]
        else:
            ins = [self._silence[:n]] * len(a.audio_in)
        outs = a.run(ins, n, midi)
        if len(outs) == 1:
            return np.stack([outs[0], outs[0]])
        if len(outs) == 2:
            return np.stack(outs)
        mono = np.sum(outs, axis=0, dtype=np.float32)
        out = np.stack([mono, mono])
        return out if not self.bypass else block

    def reset(self) -> None:
        for inst in self._insts:
            inst.reset()

    def release(self) -> None:
        """Free the instances now (on the calling thread)."""
        for inst in self._insts:
            inst.close()
        self._insts = []

    # ----------------------------------------------------------------- state
    def _save(self) -> str:
        def save() -> str:
            ptr = self._insts[0].lib.jg_lv2_state_save(self._insts[0].h)
            if ptr == self._insts[0].ffi.NULL:
                return ""
            try:
                return self._insts[0].ffi.string(ptr).decode()
            finally:
                self._insts[0].lib.lilv_free(ptr)

        return on_loader(save)

    def _restore(self, ttl: str) -> None:
        def restore() -> None:
            for inst in self._insts:
                if inst.lib.jg_lv2_state_restore(inst.h, ttl.encode()) != 0:
                    raise PluginError(f"{self.name}: its saved state could not be read")

        on_loader(restore)
        if self._drumgizmo:
            self._drumgizmo_wait(ttl)

    # ----------------------------------------------------------------- DrumGizmo's kit
    def _drumgizmo_set(self, name: str, path: str) -> None:
        """DrumGizmo keeps its kit and MIDI map in its state (an XML config), not in ports."""
        ttl = self._save()
        (start, end), values = _dg_config(ttl)
        values[name] = os.path.abspath(path)
        xml = "".join(f'  <value name="{k}">{_xml_escape(str(v))}</value>\n' for k, v in values.items())
        blob = base64.b64encode(f'<config version="1.0">\n{xml}</config>'.encode()).decode()
        self._restore(ttl[:start] + blob + ttl[end:])

    def _drumgizmo_wait(self, ttl: str) -> None:
        """DrumGizmo loads a kit on a thread of its own after a restore, and plays silence until it
        has: wait as long as reading its samples takes (about 200 MB/s, at most 30 s)."""
        _span, values = _dg_config(ttl)
        kit = values.get("drumkitfile") or ""
        if not kit or not os.path.isfile(kit):
            return
        folder = os.path.dirname(kit)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _s, files in os.walk(folder) for f in files
                   if f.lower().endswith((".wav", ".flac", ".ogg")))
        time.sleep(min(30.0, 0.1 + size / 200e6))

    def state(self) -> dict:
        d: dict[str, Any] = {"plugin": self.uri, "kind": "lv2", "name": self.name, "bypass": self.bypass,
                             "lv2_state": self._save()}
        d["params"] = {k: self.get(k) for k in self.params if k != "preset"}
        if self._preset:
            d["preset"] = self._preset
        return d

    @classmethod
    def from_state(cls, state: dict, sample_rate: float, extra_dirs=()) -> Lv2Plugin:
        p = cls(state["plugin"], sample_rate)
        ttl = state.get("lv2_state")
        if ttl:
            p._restore(ttl)
        p._preset = state.get("preset", "") if state.get("preset") in p._presets else ""  # (its values are in the state)
        for k, v in (state.get("params") or {}).items():
            if k in p.params and k != "preset" and not (ttl and p.params[k].kind == "path"):  # (in the state)
                p.set(k, v)
        p.bypass = bool(state.get("bypass", False))
        return p

    def describe(self) -> dict:
        return {"name": self.name, "kind": "lv2", "path": self.uri, "bypass": self.bypass, "dual_mono": self.dual_mono,
                "instrument": self.instrument, "latency_frames": self.latency_frames,
                "params": {k: self.get(k) for k in self.params}}
