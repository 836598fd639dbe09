"""The library's store on SQLite and on a real PostgreSQL cluster: migrations, import, reconcile,
queries, the trash, the prompt index and its text fallback. Takes are files as the worker leaves them."""

from __future__ import annotations

import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import inspect, text

from jackgen.daemon.library.embed import shared_embedder
from jackgen.daemon.library.store import Filters, Library, LibraryError, make_engine, upgrade
from tests.library_helpers import PARAPHRASES, make_take, thousand_prompts


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lib.sqlite'}"
    return request.getfixturevalue("postgres").createdb(f"t_{uuid.uuid4().hex[:8]}")


def open_lib(db_url: str, tmp_path: Path, embedder="auto") -> Library:
    return Library(db_url, tmp_path / "index", tmp_path / "sessions", embedder=embedder)


def test_migrations_from_empty_make_every_table(db_url, tmp_path):
    eng = make_engine(db_url)
    before, after = upgrade(eng)
    assert (before, after) == (None, "0002")
    names = set(inspect(eng).get_table_names())
    assert {"projects", "generations", "midi_stems", "audio_refs", "prompt_embeddings", "preferences"} <= names
    assert upgrade(eng) == ("0002", "0002")  # again: nothing to do
    eng.dispose()


def test_a_database_of_the_previous_revision_upgrades_in_place(db_url, tmp_path):
    eng = make_engine(db_url)
    assert upgrade(eng, "0001") == (None, "0001")
    with eng.begin() as c:  # a take recorded by the first library, before prompt memory existed
        c.execute(text("INSERT INTO projects (id, name, path, created_at) VALUES (1, 'old', '/x', 0)"))
        c.execute(text("INSERT INTO generations (id, take, project_id, prompt, backend, params, timings, path, meta, "
                       "created_at) VALUES (1, '20261101-101010-abcdef', 1, 'dusty boom bap drums', 'procedural', "
                       "'{}', '{}', '/x/a.wav', '{}', 1)"))
    eng.dispose()
    lib = open_lib(db_url, tmp_path, embedder=None)
    assert lib.revision == ("0001", "0002")
    g = lib.get("20261101-101010-abcdef")
    assert g["prompt"] == "dusty boom bap drums" and g["loudness_lufs"] is None
    assert [r["take"] for r in lib.similar("boom bap", 3)["results"]] == ["20261101-101010-abcdef"]  # text index built
    lib.close()


def test_import_finds_every_take_once_and_records_what_made_it(db_url, tmp_path):
    sessions = tmp_path / "sessions"
    made = [make_take(sessions, "beats", f"trap idea {i}", bpm=130 + i) for i in range(5)]
    made += [make_take(sessions, "other", "house groove", bpm=124, key="C major", style="house")]
    (sessions / "beats" / "audio_gen" / "notes.json").write_text("{}")  # not a take: skipped by name
    lib = open_lib(db_url, tmp_path, embedder=None)
    assert lib.import_dir(sessions) == {"found": 6, "added": 6, "known": 0, "skipped": 0}
    assert lib.import_dir(sessions)["added"] == 0  # twice: nothing doubled
    g = lib.get(made[0].stem)
    assert (g["session"], g["backend"], g["bpm"], g["key"], g["style"], g["seed"]) == \
        ("beats", "procedural", 130.0, "A minor", "trap", 7)
    assert g["params"]["prompt"] == "trap idea 0" and g["timings"]["ttfa_s"] == 0.05 and g["sample_rate"] == 48000
    assert g["stems"]["drums"].endswith("drums.mid")
    assert -20 < g["loudness_lufs"] < -10  # a 0.2-amplitude sine: about -17 LUFS
    lib.close()


def test_queries_filter_and_page(db_url, tmp_path):
    s = tmp_path / "sessions"
    for i, (bpm, key, style, prompt) in enumerate([(140, "F# minor", "trap", "dark trap 808"),
                                                   (90, "D minor", "boombap", "dusty boom bap"),
                                                   (124, "C major", "house", "deep house groove"),
                                                   (174, "A minor", "dnb", "liquid drum and bass")]):
        make_take(s, "a" if i < 2 else "b", prompt, bpm=bpm, key=key, style=style, when=f"2026120{i + 1}-120000")
    lib = open_lib(db_url, tmp_path, embedder=None)
    lib.reconcile()

    def takes(**kw):
        return [g["prompt"] for g in lib.query(Filters(**kw))[1]]

    assert takes() == ["liquid drum and bass", "deep house groove", "dusty boom bap", "dark trap 808"]  # newest first
    assert takes(bpm_min=120, bpm_max=150) == ["deep house groove", "dark trap 808"]
    assert takes(session="a") == ["dusty boom bap", "dark trap 808"]
    assert takes(key="c MAJOR") == ["deep house groove"]
    assert takes(style="dnb") == ["liquid drum and bass"]
    assert takes(text="house groove") == ["deep house groove"]
    assert takes(text="100%_") == []  # LIKE wildcards are literal
    assert takes(since=time.mktime(time.strptime("20261203", "%Y%m%d"))) == ["liquid drum and bass", "deep house groove"]
    total, page = lib.query(Filters(), limit=1, offset=1)
    assert total == 4 and [g["prompt"] for g in page] == ["deep house groove"]
    with pytest.raises(LibraryError):
        lib.query(Filters(), limit=0)
    with pytest.raises(LibraryError, match="not a take id"):
        lib.get("../../etc/passwd")
    with pytest.raises(LibraryError, match="no take"):
        lib.get(99999)
    lib.close()


def test_a_take_outside_the_sessions_folder_is_not_recorded(db_url, tmp_path):
    elsewhere = make_take(tmp_path / "elsewhere", "x", "forged")
    lib = open_lib(db_url, tmp_path, embedder=None)
    assert lib.add_take(elsewhere) is None  # a forged "done" event naming a file outside: ignored
    inside = make_take(tmp_path / "sessions", "s", "real one")
    inside.with_suffix(".wav").unlink()
    assert lib.add_take(inside) is None  # JSON without its audio: never a row without its file
    assert lib.count() == 0
    lib.close()


def test_delete_moves_the_files_to_the_trash_and_restore_brings_them_back(db_url, tmp_path):
    jp = make_take(tmp_path / "sessions", "s", "to be deleted")
    lib = open_lib(db_url, tmp_path, embedder=None)
    gid = lib.add_take(jp)
    wav, stems = jp.with_suffix(".wav"), tmp_path / "sessions" / "s" / "midi_stems" / jp.stem
    d = lib.delete(jp.stem)
    assert d["deleted"] and not wav.exists() and not jp.exists() and not stems.exists()
    trash = tmp_path / "sessions" / "s" / ".trash" / jp.stem
    assert (trash / wav.name).is_file() and (trash / "midi_stems" / "drums.mid").is_file()
    assert lib.count() == 0 and lib.query(Filters(deleted=True))[0] == 1
    with pytest.raises(LibraryError, match="trash"):
        lib.resolve(jp.stem)
    assert lib.reconcile()["added"] == 0  # the trash is not re-imported
    lib.restore(gid)
    assert wav.is_file() and jp.is_file() and (stems / "drums.mid").is_file() and not trash.exists()
    assert lib.resolve(str(gid)) == wav
    lib.close()


def test_reconcile_adds_takes_the_library_missed_and_marks_deleted_files(db_url, tmp_path):
    s = tmp_path / "sessions"
    a = make_take(s, "s", "recorded")
    lib = open_lib(db_url, tmp_path, embedder=None)
    lib.add_take(a)
    b = make_take(s, "s", "made while control was down")
    a.with_suffix(".wav").unlink()  # deleted by hand
    assert lib.reconcile() == {"added": 1, "gone": 1}
    assert [g["prompt"] for g in lib.query(Filters())[1]] == ["made while control was down"]
    assert lib.get(b.stem)["take"] == b.stem
    lib.close()


def test_the_library_survives_a_database_file_copy(tmp_path):
    url = f"sqlite:///{tmp_path / 'lib.sqlite'}"
    s = tmp_path / "sessions"
    for i in range(3):
        make_take(s, "s", f"take {i}")
    lib = open_lib(url, tmp_path, embedder=None)
    lib.reconcile()
    lib.close()
    copy = tmp_path / "moved" / "copy.sqlite"
    copy.parent.mkdir()
    src = sqlite3.connect(tmp_path / "lib.sqlite")
    src.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # what a backup tool does before copying a WAL database
    src.close()
    shutil.copy(tmp_path / "lib.sqlite", copy)
    lib2 = open_lib(f"sqlite:///{copy}", tmp_path, embedder=None)
    assert lib2.count() == 3 and lib2.revision == ("0002", "0002")
    lib2.close()


needs_model = pytest.mark.skipif(shared_embedder() is None, reason="the prompt-embedding model is installed by setup")


@needs_model
def test_the_nearest_past_prompt_of_a_paraphrase_is_the_right_one(db_url, tmp_path):
    """1 000 stored prompts; 20 hand-made paraphrases of 20 of them. Measured: 13/20 right at rank 1,
    15/20 within the first 10 (the 980 others are near-duplicates by construction: the same words)."""
    lib = open_lib(db_url, tmp_path)
    prompts = thousand_prompts()
    emb = lib.embedder.embed(prompts)
    from sqlalchemy.orm import Session

    from jackgen.daemon.library.models import Generation, Project, PromptEmbedding

    with Session(lib.engine) as s:  # rows straight in: 1 000 WAV files would only slow the test down
        p = Project(name="mem", path=str(tmp_path), created_at=0)
        s.add(p)
        s.flush()
        for i, (prompt, v) in enumerate(zip(prompts, emb)):
            g = Generation(take=f"20261201-000000-{i:06x}", project_id=p.id, prompt=prompt, backend="procedural",
                           params={}, timings={}, path=f"/x/{i}.wav", meta={}, created_at=i)
            s.add(g)
            s.flush()
            s.add(PromptEmbedding(generation_id=g.id, model=lib.embedder.name, dim=384, vector=v.tobytes()))
        s.commit()
    lib.index.catch_up()
    top1 = top10 = 0
    for stored, para in PARAPHRASES:
        got = [r["prompt"] for r in lib.similar(para, 10)["results"]]
        top1 += got[0] == stored
        top10 += stored in got
    assert top1 >= 12 and top10 >= 14, (top1, top10)
    r = lib.similar("dark trap beat with heavy 808s and hi-hat rolls", 3)
    assert r["mode"] == "embedding" and r["results"][0]["score"] > 0.99  # itself
    lib.close()
    lib = open_lib(db_url, tmp_path)  # the index file is read back, not rebuilt
    assert lib.index.size == 1000 and lib.index.catch_up() == 0
    assert lib.similar(PARAPHRASES[0][0], 1)["results"][0]["prompt"] == PARAPHRASES[0][0]
    lib.close()
    (tmp_path / "index" / f"prompts-{lib.embedder.name}.faiss").write_bytes(b"garbage")
    lib = open_lib(db_url, tmp_path)  # unreadable: rebuilt from the database's vectors
    assert lib.index.size == 1000
    lib.close()


def test_without_the_model_similar_prompts_come_from_text_search(db_url, tmp_path):
    s = tmp_path / "sessions"
    for prompt in ("dark trap beat with heavy 808s", "dusty boom bap drums", "liquid drum and bass rolling breaks"):
        make_take(s, "s", prompt)
    lib = open_lib(db_url, tmp_path, embedder=None)
    lib.reconcile()
    r = lib.similar("heavy trap 808 banger", 3)
    assert r["mode"] == "text" and r["results"][0]["prompt"] == "dark trap beat with heavy 808s"
    assert lib.similar("zzz qqq", 3)["results"] == []
    assert lib.similar("'; DROP TABLE generations; --", 3)["mode"] == "text"  # words only reach the query
    assert lib.count() == 3
    lib.close()


@needs_model
def test_new_takes_are_embedded_as_they_are_added(db_url, tmp_path):
    s = tmp_path / "sessions"
    lib = open_lib(db_url, tmp_path)
    lib.add_take(make_take(s, "s", "warm deep house with rhodes chords"))
    lib.add_take(make_take(s, "s", "aggressive drill with sliding 808s"))
    assert lib.index.size == 2
    r = lib.similar("drill beat with 808 slides", 2)["results"]
    assert r[0]["prompt"] == "aggressive drill with sliding 808s" and r[0]["score"] > r[1]["score"]
    lib.delete(r[0]["take"])
    assert [x["prompt"] for x in lib.similar("drill beat with 808 slides", 2)["results"]] == \
        ["warm deep house with rhodes chords"]  # the deleted take is not offered
    vec = np.frombuffer(lib.engine.connect().execute(text("SELECT vector FROM prompt_embeddings")).first()[0],
                        dtype=np.float32)
    assert vec.shape == (384,) and abs(np.linalg.norm(vec) - 1) < 1e-5
    lib.close()


def test_files_a_session_used_are_noted_once(db_url, tmp_path):
    lib = open_lib(db_url, tmp_path, embedder=None)
    clip = tmp_path / "sessions" / "s" / "media" / "loop.wav"
    lib.add_ref(tmp_path / "sessions" / "s", clip)
    lib.add_ref(tmp_path / "sessions" / "s", clip)
    lib.add_ref(tmp_path / "sessions" / "t", clip)
    assert [r["path"] for r in lib.refs("s")] == [str(clip)] and len(lib.refs("t")) == 1
    lib.close()
