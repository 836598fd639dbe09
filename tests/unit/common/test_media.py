"""The one media path policy: what a request may name, wherever it arrives."""

from __future__ import annotations

import os

import pytest

from jackgen.common.media import MediaError, MediaPolicy


@pytest.fixture
def place(tmp_path):
    sessions = tmp_path / "sessions"
    session = sessions / "s"
    (session / "audio_gen").mkdir(parents=True)
    (session / "in.wav").write_bytes(b"x")
    (session / "audio_gen" / "20261130-191500-a1b2c3.wav").write_bytes(b"x")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(b"x")
    media = tmp_path / "media"
    media.mkdir()
    (media / "ok.wav").write_bytes(b"x")
    return MediaPolicy.for_session(session, sessions, [str(media)]), tmp_path


def test_relative_names_take_ids_and_media_dirs(place):
    policy, root = place
    assert policy.resolve("in.wav") == (root / "sessions" / "s" / "in.wav").resolve()
    assert policy.resolve("20261130-191500-a1b2c3").name == "20261130-191500-a1b2c3.wav"
    assert policy.resolve(str(root / "media" / "ok.wav")).name == "ok.wav"
    assert policy.resolve("../s/in.wav").name == "in.wav"  # '..' that stays inside is fine


@pytest.mark.parametrize("name", ["../../elsewhere/secret.wav", "/etc/passwd", "{root}/elsewhere/secret.wav",
                                  "link.wav", "linkdir/secret.wav"])
def test_escapes_are_refused_with_403(place, name):
    policy, root = place
    os.symlink(root / "elsewhere" / "secret.wav", root / "sessions" / "s" / "link.wav")
    os.symlink(root / "elsewhere", root / "sessions" / "s" / "linkdir")
    with pytest.raises(MediaError, match="outside the folders jackgen reads from") as e:
        policy.resolve(name.format(root=root))
    assert e.value.status == 403


@pytest.mark.parametrize("name, words", [("", "must be a path"), (None, "must be a path"), (3, "must be a path"),
                                         ("a\0b", "not a valid path"), ("x" * 5000, "not a valid path"),
                                         ("nope.wav", "does not exist")])
def test_bad_names_are_clear_errors(place, name, words):
    policy, _ = place
    with pytest.raises(MediaError, match=words):
        policy.resolve(name)


def test_soundfonts_may_come_from_the_system_folders_only(place):
    policy, _ = place
    sf2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
    assert policy.resolve(sf2, "SoundFont", kind="soundfont") == __import__("pathlib").Path(sf2).resolve()
    with pytest.raises(MediaError, match="outside"):
        policy.resolve(sf2, "MIDI file", kind="midi")


def test_a_worker_gets_the_same_policy(place):
    policy, _ = place
    again = MediaPolicy.from_dict(policy.to_dict())
    assert again == policy
