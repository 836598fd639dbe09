"""Takes on disk as the worker writes them (audio + JSON beside it), and prompts for the memory tests."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf


def make_take(sessions: Path, session: str, prompt: str, bpm: float = 140.0, key: str = "A minor",
              style: str = "trap", backend: str = "procedural", seconds: float = 1.0, when: str = "20261201-120000",
              stems: bool = True) -> Path:
    """A take as the queue worker leaves it: audio_gen/<take>.wav, <take>.json, midi_stems/<take>/*.mid."""
    audio = sessions / session / "audio_gen"
    audio.mkdir(parents=True, exist_ok=True)
    take = f"{when}-{uuid.uuid4().hex[:6]}"
    rate = 48000
    t = np.arange(int(seconds * rate)) / rate
    x = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(str(audio / f"{take}.wav"), np.stack([x, x], 1), rate, subtype="FLOAT")
    meta = {"take": take, "job": take, "variation": 1, "variations": 1, "prompt": prompt, "backend": backend,
            "seed": 7, "params": {"prompt": prompt, "duration_s": seconds, "backend": backend, "bpm": None},
            "sample_rate": rate, "channels": 2, "frames": len(x), "seconds": seconds, "peak_dbfs": -14.0,
            "file": f"{take}.wav", "timings": {"ttfa_s": 0.05, "total_s": 0.2}, "host": "test",
            "style": style, "bpm": bpm, "key": key}
    if stems:
        sd = sessions / session / "midi_stems" / take
        sd.mkdir(parents=True, exist_ok=True)
        (sd / "drums.mid").write_bytes(b"MThd")
        meta["stems"] = {"drums": str(sd / "drums.mid")}
    (audio / f"{take}.json").write_text(json.dumps(meta))
    return audio / f"{take}.json"


GENRES = ["trap", "drill", "boom bap", "lofi", "house", "techno", "drum and bass", "dubstep", "breakbeat", "ambient"]
MOODS = ["dark", "bright", "melancholic", "aggressive", "chill", "dreamy", "gritty", "uplifting", "moody", "hypnotic"]
SOUNDS = ["808s", "piano chords", "vinyl crackle", "analog synth pads", "plucked guitar", "brass stabs",
          "choir vocals", "sub bass", "rhodes keys", "string section"]
EXTRA = ["with hi-hat rolls", "with a swung groove", "with heavy sidechain", "with a long intro", "with tape saturation",
         "with sparse drums", "with a big drop", "with chopped samples", "with a walking bassline", "with field recordings"]

# (stored prompt, a paraphrase a producer might type later); the stored ones are part of the 1 000
PARAPHRASES = [
    ("dark trap beat with heavy 808s and hi-hat rolls", "sinister trap instrumental, booming 808 bass, rolling hats"),
    ("chill lofi hip hop with vinyl crackle and rhodes keys", "relaxed lo-fi beat, dusty record noise, electric piano"),
    ("uplifting house track with piano chords and a big drop", "happy house music, piano stabs, huge drop"),
    ("aggressive drill beat with sliding 808s", "hard uk drill instrumental with gliding bass"),
    ("dreamy ambient soundscape with choir vocals", "ethereal ambient texture with angelic voices"),
    ("liquid drum and bass with warm pads and rolling breaks", "smooth dnb, soft synth pads, fast breakbeats"),
    ("gritty boom bap with chopped soul samples", "dusty 90s hip hop beat, sliced soul records"),
    ("hypnotic techno with a pounding kick and acid bassline", "trance-like techno, thumping kick drum, 303 acid bass"),
    ("melancholic piano ballad with strings", "sad piano song backed by a string section"),
    ("heavy dubstep drop with wobble bass", "massive dubstep wobble bass drop"),
    ("funky breakbeat with brass stabs", "groovy breaks with horn hits"),
    ("moody rnb slow jam with rhodes", "late night r&b groove on electric piano"),
    ("energetic big room edm festival anthem", "loud festival edm banger for the main stage"),
    ("jazzy hip hop beat with upright bass and brushes", "jazz rap instrumental, double bass, brushed drums"),
    ("reggaeton beat with dembow rhythm", "latin urbano instrumental on the dembow groove"),
    ("cinematic orchestral trailer music with big drums", "epic film trailer score, huge percussion"),
    ("minimal deep house groove with a warm bassline", "stripped-back deep house, round warm bass"),
    ("spooky halloween synthwave with arpeggios", "creepy retro synth track, arpeggiated synths"),
    ("afrobeats dance track with log drums", "amapiano style groove with log drum bass"),
    ("slow doom metal riff with distorted guitars", "crushing sludgy guitar riff, very slow and heavy"),
]


def thousand_prompts(seed: int = 5) -> list[str]:
    """1 000 distinct producer prompts: the 20 stored halves of PARAPHRASES and 980 generated ones."""
    rng = random.Random(seed)
    out = {p for p, _ in PARAPHRASES}
    while len(out) < 1000:
        out.add(f"{rng.choice(MOODS)} {rng.choice(GENRES)} beat with {rng.choice(SOUNDS)} {rng.choice(EXTRA)}")
    return sorted(out)
