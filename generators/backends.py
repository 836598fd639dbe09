"""The FluidSynth backends (procedural, fluidsynth) and ``make_backend``, which picks a backend by
name (MusicGen's module, the only one that imports torch, loads only when asked for)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jackgen.generators.base import CHUNK_FRAMES, FIRST_CHUNK_FRAMES, Backend, TakeContext, fade_tail
from jackgen.generators.job import JobError, JobSpec
from jackgen.generators.prompt import interpret_spec

__all__ = ["Backend", "TakeContext", "FluidBackend", "ProceduralBackend", "FluidSynthBackend", "make_backend"]


class FluidBackend(Backend):
    """Shared by procedural and fluidsynth: a warm FluidSynth with the GM SoundFont."""

    gain = 0.2

    def __init__(self, soundfont: str | None = None) -> None:
        self.soundfont = soundfont
        self.renderers: dict[tuple[str | None, int], object] = {}

    def renderer(self, rate: int, soundfont: str | None = None):
        from jackgen.generators.synth import FluidRenderer

        key = (soundfont or self.soundfont, rate)
        if key not in self.renderers:
            self.renderers[key] = FluidRenderer(key[0], rate, gain=self.gain)
        return self.renderers[key]

    def load(self) -> None:
        self.renderer(48000)

    def close(self) -> None:
        for r in self.renderers.values():
            r.close()
        self.renderers.clear()

    def _render(self, path: Path, ctx: TakeContext, k: int, max_frames: int | None, tail_s: float,
                soundfont: str | None = None, expected_s: float | None = None, midi=None):
        r = self.renderer(ctx.rate, soundfont)
        ctx.info["soundfont"] = r.soundfont
        done = 0
        fade = int(0.05 * ctx.rate)
        for chunk in r.render(path, first_chunk_frames=FIRST_CHUNK_FRAMES if k == 0 else CHUNK_FRAMES,
                              chunk_frames=CHUNK_FRAMES, max_frames=max_frames, tail_s=tail_s,
                              should_stop=ctx.should_stop, gain=self.gain, midi=midi):
            done += chunk.shape[0]
            if max_frames is not None:
                fade_tail(chunk, max_frames - done, fade)
            if expected_s:
                ctx.progress(min(1.0, done / ctx.rate / expected_s))
            yield k, chunk


class ProceduralBackend(FluidBackend):
    """The embedded default: compose from bpm/key/style/seed, render with FluidSynth. No model files."""

    name = "procedural"
    gain = 0.6  # a band mix peaks around −6 dBFS at this gain with FluidR3_GM

    def generate(self, spec: JobSpec, ctx: TakeContext) -> Iterator[tuple[int, np.ndarray]]:
        from jackgen.generators.compose import compose

        it = interpret_spec(spec)
        ctx.info.update({"style": it.genre, "bpm": it.bpm, "key": it.key, "interpreted": it.to_dict(), "stems": []})
        total = int(round(spec.duration_s * ctx.rate))
        for k in range(spec.variations):
            seed = int(spec.seed) + k
            comp = compose(it.genre, it.key, it.bpm, seed, spec.duration_s, it.structure, it.flags)
            paths = comp.stem_paths(ctx.stems_dir(k))
            full = comp.write_midi(paths["full"])  # what is rendered; the parts' own files come after
            ctx.info["stems"].append({n: str(p) for n, p in paths.items()})
            ctx.info.setdefault("progressions", []).append(list(comp.progression))
            ctx.info.setdefault("sections", []).append(comp.describe_sections())
            base = k / spec.variations

            def progress(f: float, base=base) -> None:
                ctx.progress(base + f / spec.variations)

            sub = TakeContext(ctx.rate, ctx.session_dir, ctx.takes, ctx.should_stop, ctx.info, progress, ctx.media)
            if spec.instruments:
                chunks = self._with_instruments(spec, comp, paths, sub, k, total, ctx)
            else:
                chunks = self._render(paths["full"], sub, k, total, 0.0, expected_s=spec.duration_s, midi=full)
            yield from itertools.islice(chunks, 1)
            comp.write_stems(ctx.stems_dir(k), only=list(comp.parts))  # once the first audio is out
            yield from chunks

    def _with_instruments(self, spec: JobSpec, comp, paths: dict, sub: TakeContext, k: int, total: int,
                          ctx: TakeContext):
        """FluidSynth plays the stems without an instrument; each of the others goes through its own."""
        from jackgen.generators.instruments import StemPlayer, instrument_states, mix_in

        unknown = sorted(set(spec.instruments) - set(comp.parts))
        if unknown:
            raise JobError(f"instruments: no stem {', '.join(unknown)} in this composition; it has "
                           f"{', '.join(comp.parts)}")
        if "instrument_states" not in ctx.info:  # loaded once a job (its variations share them)
            states = instrument_states(spec.instruments, lambda p, what: ctx.allowed(p, what, "midi"))
            ctx.info["instrument_states"] = states
            ctx.info["instruments"] = {s: st["name"] for s, st in states.items()}
        states = ctx.info["instrument_states"]
        comp.write_stems(ctx.stems_dir(k), only=list(spec.instruments))
        rest = [p for p in comp.parts if p not in spec.instruments]
        fluid_path = paths["full"].with_name(".fluidsynth.mid")
        fluid = comp.write_midi(fluid_path, rest)
        players = [StemPlayer(paths[s], states[s], ctx.rate) for s in spec.instruments]
        chunks = self._render(fluid_path, sub, k, total, 0.0, expected_s=spec.duration_s, midi=fluid) if rest else ()
        return mix_in(chunks, players, k, total, int(0.05 * ctx.rate), ctx.should_stop)


class FluidSynthBackend(FluidBackend):
    """Any General MIDI file with a chosen SoundFont, sounding as the ``fluidsynth`` CLI does.

    Without ``midi`` in the job it renders the procedural composition for the prompt
    (so a SoundFont can be auditioned on generated parts).
    """

    name = "fluidsynth"
    tail_s = 1.0

    def generate(self, spec: JobSpec, ctx: TakeContext) -> Iterator[tuple[int, np.ndarray]]:
        import mido

        sf2 = str(ctx.allowed(spec.soundfont, "SoundFont", "soundfont")) if spec.soundfont else None
        if spec.midi:
            midi = ctx.allowed(spec.midi, "MIDI file", "midi")
            try:
                length_s = mido.MidiFile(str(midi)).length
            except Exception as e:
                raise JobError(f"{spec.midi} is not a MIDI file jackgen can read: {e}") from None
            ctx.info["midi"] = str(midi)
            for k in range(spec.variations):  # one take per variation: a MIDI file renders the same each time
                yield from self._render(midi, ctx, k, None, self.tail_s, sf2, expected_s=length_s + self.tail_s)
            return
        proc = ProceduralBackend(self.soundfont)
        proc.renderers = self.renderers
        proc.gain = self.gain
        yield from proc.generate(spec, ctx)


def make_backend(name: str, **kw) -> Backend:
    if name == "procedural":
        return ProceduralBackend(kw.get("soundfont"))
    if name == "fluidsynth":
        return FluidSynthBackend(kw.get("soundfont"))
    if name == "musicgen":
        from jackgen.generators.musicgen import MusicGenBackend

        return MusicGenBackend(**{k: v for k, v in kw.items() if k != "soundfont"})
    raise JobError(f"unknown backend {name!r}: procedural, fluidsynth or musicgen")
