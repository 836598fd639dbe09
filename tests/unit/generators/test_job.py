import pytest

from jackgen.generators.job import JobError, JobSpec, guess_style, parse_key


@pytest.mark.parametrize("text,tonic,minor", [("A minor", 9, True), ("Am", 9, True), ("F# major", 6, False),
                                              ("Bb", 10, False), ("eb min", 3, True), ("C", 0, False)])
def test_keys(text, tonic, minor):
    k = parse_key(text)
    assert (k.tonic, k.minor) == (tonic, minor)


def test_relative_keys():
    assert parse_key("A minor").relative == parse_key("C major")
    assert parse_key("Eb major").relative == parse_key("C minor")


@pytest.mark.parametrize("bad,words", [({"prompt": "x", "duration": float("nan")}, "duration"),
                                       ({"prompt": "x", "duration": True}, "duration"),
                                       ({"prompt": "x", "seed": 1.5}, "whole number"),
                                       ({"prompt": "x", "priority": "urgent"}, "priority"),
                                       ({"prompt": "x", "key": "Z"}, "key"),
                                       ({"prompt": "x" * 5000}, "prompt"),
                                       ({"prompt": "", "backend": "musicgen"}, "needs a prompt"),
                                       ([1, 2], "JSON object")])
def test_bad_jobs_say_what_is_wrong(bad, words):
    with pytest.raises(JobError, match=words):
        JobSpec.from_dict(bad)


def test_defaults_and_round_trip():
    s = JobSpec.from_dict({"prompt": " a house tune ", "track": 2, "key": "f#m"})
    assert (s.prompt, s.track, s.key, s.backend, s.variations) == ("a house tune", 1, "F# minor", "procedural", 1)
    assert JobSpec(**s.to_dict()) == s
    assert guess_style(s.prompt) == "house" and guess_style("gentle ambient drone") == "ambient"
