"""Reading a prompt: tempo, key, genre and arrangement words, as producers write them; fields win."""

from __future__ import annotations

import pytest

from jackgen.generators.job import JobError, JobSpec
from jackgen.generators.prompt import interpret, read_prompt

# prompt → (bpm, key, genre); None where the prompt says nothing about it
PROMPTS = [
    ("heavy 808 bass drop trap beat 140 BPM", 140, None, "trap"),
    ("drill beat dark strings 150 BPM hard kick", 150, None, "drill"),
    ("chill lofi beat with rhodes", None, None, "lofi"),
    ("dusty lofi beat with rhodes", None, None, "lofi"),
    ("lo-fi hip hop study beats at 84", 84, None, "lofi"),
    ("lo fi chillhop in A minor", None, "A minor", "lofi"),
    ("boom bap beat 92bpm in Eb major", 92, "Eb major", "boombap"),
    ("90s boom-bap with dusty drums, C#min", None, "C# minor", "boombap"),
    ("Boom Bap, 88 bpm, F# minor", 88, "F# minor", "boombap"),
    ("hip-hop instrumental at 94", 94, None, "boombap"),
    ("dark trap beat in F#m 140bpm", 140, "F# minor", "trap"),
    ("trap soul 132 BPM Bbm", 132, "Bb minor", "trap"),
    ("uk drill 142 bpm G minor sliding 808s", 142, "G minor", "drill"),
    ("NY drill with bells, 145 BPM, in C# minor", 145, "C# minor", "drill"),
    ("deep house groove 122 bpm", 122, None, "house"),
    ("tech house banger in A", None, "A major", "house"),
    ("edm festival anthem", None, None, "house"),
    ("EDM 128 BPM in G major", 128, "G major", "house"),
    ("techno 130bpm dark", 130, None, "techno"),
    ("industrial techno at 135, D minor", 135, "D minor", "techno"),
    ("dnb roller 174 bpm", 174, None, "dnb"),
    ("DnB with reese bass in E minor", None, "E minor", "dnb"),
    ("drum and bass 172bpm", 172, None, "dnb"),
    ("drum & bass liquid vibes", None, None, "dnb"),
    ("drum n bass at 175", 175, None, "dnb"),
    ("d&b jungle breaks 170 BPM", 170, None, "dnb"),
    ("dubstep wobble 140 BPM F minor", 140, "F minor", "dubstep"),
    ("brostep drop in C sharp minor", None, "C# minor", "dubstep"),
    ("riddim at 140", 140, None, "dubstep"),
    ("funk breakbeat 105 bpm", 105, None, "breakbeat"),
    ("funky breaks in E minor", None, "E minor", "breakbeat"),
    ("ambient pads 70 bpm in D major", 70, "D major", "ambient"),
    ("chillwave sunset, key of G", None, "G major", "ambient"),
    ("cinematic drone", None, None, "ambient"),
    ("rock anthem 120 bpm E minor", 120, "E minor", "rock"),
    ("punk guitar at 160", 160, None, "rock"),
    ("a beat", None, None, None),
    ("808 heavy beat, tempo 138", 138, None, "trap"),
    ("house music in B flat minor", None, "Bb minor", "house"),
    ("trap at 70 half time", 70, None, "trap"),
    ("I am making a trap beat", None, None, "trap"),
    ("trap beat 808 kicks 5000 bpm", None, None, "trap"),
]


@pytest.mark.parametrize("prompt,bpm,key,genre", PROMPTS)
def test_prompt_table(prompt, bpm, key, genre):
    r = read_prompt(prompt)
    assert (r.bpm, r.key, r.genre) == (bpm, key, genre)


def test_table_is_big_enough():
    assert len(PROMPTS) >= 40


def test_words_that_change_the_arrangement():
    r = read_prompt("dark punchy trap, hard kick, hi-hat rolls, strings and pads, no drums, sliding 808s")
    assert set(r.flags) == {"dark", "punchy", "hard kick", "hat rolls", "strings", "pads", "no drums", "808"}
    assert read_prompt("no melody, just drums").flags == ("no melody",)


def test_fields_win_and_sources_are_recorded():
    it = interpret("drill beat dark strings 150 BPM hard kick")
    assert (it.genre, it.bpm, it.key) == ("drill", 150.0, "C# minor")
    assert it.source == {"genre": "prompt", "bpm": "prompt", "key": "default"}
    it = interpret("drill beat 150 BPM in G minor", style="boom bap", bpm=90, key="D minor")
    assert (it.genre, it.bpm, it.key) == ("boombap", 90.0, "D minor")
    assert it.source == {"genre": "field", "bpm": "field", "key": "field"}
    d = it.to_dict()
    assert d["read"]["genre"] == "drill" and d["read"]["bpm"] == 150.0 and d["read"]["key"] == "G minor"
    assert d["chosen"]["genre"] == "boombap"
    assert interpret("a dark beat", style="ambient").key == "B minor"  # D major's relative: 'dark' asked minor


@pytest.mark.parametrize("spelling", ["trap", "TRAP", "boom bap", "Boom-Bap", "lo-fi", "dnb", "drum and bass",
                                      "edm", "chillwave", "funk breakbeat", "dubstep", "techno"])
def test_style_accepts_every_genre_and_its_spellings(spelling):
    assert JobSpec.from_dict({"prompt": "", "style": spelling}).style in (
        "trap", "boombap", "lofi", "dnb", "house", "ambient", "breakbeat", "dubstep", "techno")


def test_unknown_style_lists_the_genres():
    with pytest.raises(JobError) as e:
        JobSpec.from_dict({"prompt": "", "style": "polka"})
    for g in ("trap", "drill", "boombap", "lofi", "house", "techno", "dnb", "dubstep", "breakbeat", "ambient", "rock"):
        assert g in str(e.value)


def test_structure_is_checked_and_sets_the_length():
    s = JobSpec.from_dict({"prompt": "trap", "structure": "intro:4, drop:8,break:4,drop:8"})
    assert s.structure == "intro:4,drop:8,break:4,drop:8"
    assert s.duration_s == pytest.approx(24 * 4 * 60 / 140)  # 24 bars at trap's 140
    assert JobSpec.from_dict({"prompt": "", "structure": "verse:8", "duration": 5}).duration_s == 5
    for bad, words in (("intro", "bar count"), ("solo:4", "not a section"), ("drop:0", "bar count"),
                       ("drop:8000", "bar count"), (42, "structure must be text")):
        with pytest.raises(JobError, match=words):
            JobSpec.from_dict({"prompt": "", "structure": bad})
    with pytest.raises(JobError, match="limit"):
        JobSpec.from_dict({"prompt": "", "structure": ",".join(["drop:128"] * 8), "bpm": 60})
