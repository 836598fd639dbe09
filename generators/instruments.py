"""A procedural composition's stems played by plugin instruments (``instruments`` in a job).

``jackgen generate … --instrument lead=http://synthv1.sourceforge.net/lv2 --instrument drums=DrumGizmo``
renders each named stem through its instrument (LV2 or VST3, with its parameters) instead of
FluidSynth, block by block as the rest is rendered, and mixes the two: the take streams into its
track while it is made, as any other. The instruments are the same ``ChainStage`` a track runs, so
a stem sounds in a take as it does played on a track with that instrument.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from jackgen.generators.base import fade_tail
from jackgen.generators.job import JobError
from jackgen.generators.producer import ChunkReader, midi_chunks, through_chain
from jackgen.plugins.chainstage import ChainStage

def instrument_states(instruments: dict, allowed) -> dict[str, dict]:
    """Each stem's instrument loaded once with its parameters (a file it reads, such as a drum kit,
    only from the allowed folders): stem -> the plugin's state. ``allowed(path, what)`` checks a path."""
    from jackgen.plugins.base import resolve_file_params
    from jackgen.plugins.host import PluginError
    from jackgen.plugins.isolate import instantiate

    out = {}
    for stem, spec in instruments.items():
        params = resolve_file_params(spec.get("params", {}), lambda v, k, stem=stem: allowed(v, f"{stem} instrument's {k}"))
        try:
            info = instantiate(spec["plugin"], params)
        except PluginError as e:
            raise JobError(f"instruments.{stem}: {e}") from None
        if not info["instrument"]:
            raise JobError(f"instruments.{stem}: {info['state']['name']} is an effect, not an instrument")
        out[stem] = info["state"]
    return out


class StemPlayer:
    """One stem's MIDI through its instrument, pulled a chunk at a time."""

    def __init__(self, path: Path, state: dict, rate: int) -> None:
        self.stage = ChainStage([state], rate)
        self._reader = ChunkReader(through_chain(midi_chunks(str(path), rate), self.stage))

    def pull(self, n: int) -> np.ndarray:
        """``n`` frames: the stem's, then silence once it has rung out."""
        out = self._reader.take(n)
        if out.shape[0] < n:
            out = np.concatenate([out, np.zeros((n - out.shape[0], 2), dtype=np.float32)])
        return out


def mix_in(chunks: Iterable[tuple[int, np.ndarray]], players: list[StemPlayer], k: int, total: int,
           fade: int, should_stop) -> Iterator[tuple[int, np.ndarray]]:
    """FluidSynth's chunks of the other stems with the instruments' stems added, ``total`` frames in
    all (the instruments go on where FluidSynth has nothing left to play), the end faded."""
    done = 0
    for kk, chunk in chunks:
        n = chunk.shape[0]
        out = chunk.copy()
        for p in players:
            out += p.pull(n)
        done += n
        fade_tail(out, total - done, fade)
        yield kk, out
    while done < total and not should_stop():
        n = min(8192, total - done)
        out = np.zeros((n, 2), dtype=np.float32)
        for p in players:
            out += p.pull(n)
        done += n
        fade_tail(out, total - done, fade)
        yield k, out
