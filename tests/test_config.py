"""Bad configs fail fast with one line naming the key; good configs get the schema's defaults."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from saturation.config import (
    ConfigError,
    load_config,
    load_schema,
    merge_configs,
    validate_config,
)
from saturation.plan import make_plan
from tests.conftest import MICRO, ROOT, snakemake, write_config

DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())

BAD_CONFIGS = {
    "unknown key": ({"train": {"learning_rate": 0.1}}, "train: unknown key 'learning_rate'"),
    "wrong type": ({"train": {"steps": "many"}}, "train.steps: 'many' is not of type 'integer'"),
    "negative learning rate": ({"train": {"lr": -0.001}}, "train.lr: -0.001 is less than or equal"),
    "width not divisible by heads": (
        {"widths": [{"width": 48, "heads": 5}]},
        "widths[0]: width 48 is not divisible by heads 5",
    ),
    "unknown corpus source": (
        {"corpus": {"sources": [{"gutenberg": "x"}]}},
        "corpus.sources[0]: unknown source 'gutenberg'",
    ),
    "unknown builtin corpus": (
        {"corpus": {"sources": [{"builtin": "quran"}]}},
        "corpus.sources[0].builtin: unknown builtin corpus 'quran'",
    ),
    "checkpoint beyond the last step": (
        {"train": {"steps": 100, "checkpoints": {"steps": [50, 150]}}},
        "train.checkpoints.steps[1]: step 150 is beyond the last step train.steps = 100",
    ),
    "unknown evaluation task": (
        {"evaluation": {"tasks": ["mmlu"]}},
        "evaluation.tasks[0]: 'mmlu' is not one of",
    ),
    "local data for an unlisted task": (
        {"evaluation": {"local_data": {"sciq": {"test": "sciq.jsonl"}}}},
        "evaluation.local_data.sciq: 'sciq' is not listed in evaluation.tasks",
    ),
    "evaluating a step that is not a checkpoint": (
        {"evaluation": {"checkpoints": {"include": ["final", "333"]}}},
        "evaluation.checkpoints.include[1]: step 333 is not a checkpoint step",
    ),
    "batch that does not split over the GPUs": (
        {"widths": [{"width": 32, "gpus": 3}]},
        "widths[0]: train.batch_size 16 does not split evenly over 3 data-parallel GPUs",
    ),
    "unknown head": (
        {"widths": [{"width": 32, "head": "untied"}]},
        "widths[0].head: 'untied' is not valid under any of the given schemas",
    ),
    "low-rank head above the width": (
        {"widths": [{"width": 32, "head": {"low_rank": {"rank": 48}}}]},
        "widths[0].head: low_rank rank 48 exceeds the width 32",
    ),
    "width and head listed twice": (
        {"widths": [{"width": 32}, {"width": 32, "head": "tied"}, {"width": 32, "head": "tied"}]},
        "widths[2].width: 32 with the tied head is already listed at widths[1]",
    ),
    "width listed twice": (
        {"widths": [{"width": 32}, {"width": 32}]},
        "widths[1].width: 32 with the linear head is already listed at widths[0]; give one of "
        "them another `tag`",
    ),
    "width listed twice with one tag": (
        {"widths": [{"width": 32}, {"width": 32, "tag": "wd0"}, {"width": 32, "tag": "wd0"}]},
        "widths[2].width: 32 with the linear head and tag 'wd0' is already listed at widths[1]",
    ),
    "tag that is not a name suffix": (
        {"widths": [{"width": 32, "tag": "wd-0.1"}]},
        "widths[0].tag: 'wd-0.1' does not match",
    ),
    "a width that stops before a checkpoint mark": (
        {"train": {"checkpoints": {"steps": [300]}}, "widths": [{"width": 32, "steps": 200}]},
        "widths[0].steps: 200 ends before train.checkpoints.steps[0] = 300",
    ),
    "evaluating a step one width's schedule lacks": (
        {
            "evaluation": {"checkpoints": {"include": ["final", "300"]}},
            "widths": [{"width": 32}, {"width": 64, "steps": 250, "tag": "short"}],
        },
        "evaluation.checkpoints.include[1]: step 300 is not a checkpoint step of widths[1]",
    ),
    "a width's batch that does not split over its GPUs": (
        {"widths": [{"width": 32, "gpus": 2, "batch_size": 9}]},
        "widths[0]: batch_size 9 does not split evenly over 2 data-parallel GPUs",
    ),
    "empty results folder": ({"results": ""}, "results: '' should be non-empty"),
    "seed listed twice": ({"train": {"seeds": [0, 0]}}, "train.seeds: [0, 0] has non-unique"),
    "task listed twice": (
        {"evaluation": {"tasks": ["sat_cloze", "sat_cloze"]}},
        "evaluation.tasks: ['sat_cloze', 'sat_cloze'] has non-unique",
    ),
    "local data that is a folder": (
        {
            "evaluation": {
                "tasks": ["sciq"],
                "local_data": {"sciq": {"test": str(ROOT / "configs")}},
            }
        },
        f"evaluation.local_data.sciq.test: {str(ROOT / 'configs')!r} is not a file",
    ),
    "missing local data": (
        {"evaluation": {"tasks": ["sciq"], "local_data": {"sciq": {"test": "no/sciq.jsonl"}}}},
        "evaluation.local_data.sciq.test: 'no/sciq.jsonl' does not exist",
    ),
    "missing pretrained tokenizer": (
        {"tokenizer": {"pretrained": "no/tokenizer"}},
        "tokenizer.pretrained: folder 'no/tokenizer' does not exist",
    ),
    "pretrained tokenizer that is a file": (
        {"tokenizer": {"pretrained": str(ROOT / "config.yaml")}},
        f"tokenizer.pretrained: {str(ROOT / 'config.yaml')!r} is not a folder",
    ),
    "scaling law with no runs to fit": (
        {"scaling": {"enabled": True}},
        "scaling: set min_width or min_parameters (the runs the law is fitted on)",
    ),
    "scaling law fitted on one size": (
        {"scaling": {"enabled": True, "min_width": 256}},
        "scaling.min_width: 256 leaves widths [256]; fitting A and α needs at least two",
    ),
    "no runs at all": (
        {"widths": [], "synthetic": {"languages": []}},
        "widths: no runs to measure",
    ),
    "whole-number float for an integer": (
        {"train": {"steps": 40.0}},
        "train.steps: 40.0 is not an integer (write 40)",
    ),
    "whole-number float width": (
        {"widths": [{"width": 16.0}]},
        "widths[0].width: 16.0 is not an integer (write 16)",
    ),
    "suite model with both a repo and a folder": (
        {"suites": {"models": [{"name": "m", "hf": "org/m", "path": "x", "width": 8}]}},
        "suites.models[0]: give exactly one of hf (a hub repo) or path (a folder)",
    ),
    "suite folder that is no model": (
        {"suites": {"models": [{"name": "m", "path": str(ROOT / "configs")}]}},
        f"suites.models[0].path: {str(ROOT / 'configs')!r} holds no config.json",
    ),
    "uncached hub model of unknown width": (
        {"suites": {"models": [{"name": "m", "hf": "org/never-cached"}]}},
        "suites.models[0].width: org/never-cached is not in the HF cache",
    ),
    "pythia step off its schedule": (
        {"suites": {"pythia": {"sizes": ["14m"], "steps": [0, 1500]}}},
        "suites.pythia.steps: [1500] are not Pythia checkpoints",
    ),
    "pythia size that does not exist": (
        {"suites": {"pythia": {"sizes": ["50m"]}}},
        "suites.pythia.sizes[0]: '50m' is not one of",
    ),
    "revisions for a step list of another length": (
        {
            "suites": {
                "models": [
                    {"name": "m", "hf": "org/m", "width": 8, "revisions": ["a", "b"], "steps": [1]}
                ]
            }
        },
        "suites.models[0].steps: 1 steps for 2 revisions",
    ),
    "two runs of one name": (
        {"suites": {"models": [{"name": "w32-s0", "hf": "org/m", "width": 8}]}},
        "run 'w32-s0' is configured twice",
    ),
    "folder that holds no tokenizer": (
        {"tokenizer": {"pretrained": str(ROOT / "configs")}},
        f"tokenizer.pretrained: folder {str(ROOT / 'configs')!r} holds no HF tokenizer",
    ),
}


def merged(overrides: dict) -> dict:
    """What Snakemake does with --configfile on top of config.yaml: dicts merge, lists replace."""
    return merge_configs(DEFAULT, overrides)


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_one_clear_line(case: str) -> None:
    overrides, expected = BAD_CONFIGS[case]
    with pytest.raises(ConfigError) as caught:  # the schema, the semantics, then the plan
        make_plan(validate_config(merged(overrides)))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_snakemake_refuses_bad_config_before_any_job(case: str, tmp_path: Path) -> None:
    overrides, expected = BAD_CONFIGS[case]
    bad = write_config(tmp_path / "bad.yaml", overrides)
    started = time.perf_counter()
    done = snakemake(tmp_path, "--configfile", str(bad), check=False)
    elapsed = time.perf_counter() - started
    assert done.returncode != 0
    assert elapsed < 5, f"config error took {elapsed:.1f} s"
    errors = [line for line in done.stderr.splitlines() if line.startswith("config error: ")]
    assert len(errors) == 1, done.stderr
    assert expected in errors[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists(), "no job may start on a bad config"


def test_text_source_matching_no_file_names_its_key(tmp_path: Path) -> None:
    """Found when the plan fingerprints the sources, still before any job, with the key."""
    bad = write_config(tmp_path / "bad.yaml", {"corpus": {"sources": [{"text": "no/*.txt"}]}})
    done = snakemake(tmp_path, "--configfile", str(bad), check=False)
    errors = [line for line in done.stderr.splitlines() if line.startswith("config error: ")]
    assert errors == [
        "config error: corpus.sources[0].text: text source pattern 'no/*.txt' matches no file"
    ], done.stderr
    assert not (tmp_path / "results").exists()


def test_defaults_are_filled_in() -> None:
    config = validate_config({"widths": [{"width": 64}]})
    assert config["train"]["checkpoints"] == {"log_until": 64, "every": 100, "steps": []}
    assert config["corpus"]["sources"] == [{"builtin": "kjv"}, {"builtin": "shakespeare"}]
    assert config["runtime"]["device"] == "auto"


def restated_values(node: yaml.Node, path: tuple[str, ...] = ()) -> list[tuple]:
    """(key path, value, line number) of every leaf a YAML mapping states; lists are leaves."""
    if not isinstance(node, yaml.MappingNode):
        return [(path, yaml.safe_load(yaml.serialize(node)), node.start_mark.line)]
    return [leaf for key, value in node.value
            for leaf in restated_values(value, (*path, key.value))]  # fmt: skip


def override_problems(text: str) -> list[str]:
    """What a config file restates against the schema: a default (the schema is the one place
    that states them, so two places can never disagree again), or a change without `# override:`
    on its line."""
    lines, schema = text.splitlines(), load_schema()
    problems = []
    for path, value, line in restated_values(yaml.compose(text)):
        node = schema
        for key in path:
            node = node.get("properties", {}).get(key, {})
        if "default" not in node:  # e.g. widths: required, no default to restate
            continue
        if value == node["default"]:
            problems.append(f"{'.'.join(path)} restates the schema's default {value!r}")
        elif "# override:" not in lines[line]:
            problems.append(f"{'.'.join(path)}: {value!r} differs from the schema's default "
                            f"{node['default']!r}; mark it `# override: <why>`")  # fmt: skip
    return problems


def test_the_embedded_default_restates_only_marked_overrides() -> None:
    assert override_problems((ROOT / "config.yaml").read_text()) == []


def test_restated_defaults_and_unmarked_overrides_are_found() -> None:
    text = (
        "train:\n  steps: 400\n  lr: 0.5\n  eps: 0.25  # override: a reason\n"
        "  checkpoints: {every: 7}\nwidths: [{width: 8}]\n"
    )
    assert override_problems(text) == [
        "train.steps restates the schema's default 400",
        "train.lr: 0.5 differs from the schema's default 0.001; mark it `# override: <why>`",
        "train.checkpoints.every: 7 differs from the schema's default 100; mark it "
        "`# override: <why>`",
    ]


def test_shipped_configs_are_valid() -> None:
    validate_config(merged({}))
    for preset in sorted((ROOT / "configs").glob("*.yaml")):
        validate_config(merged(yaml.safe_load(preset.read_text())))


def test_missing_text_files_are_a_config_error(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad.yaml", {"corpus": {"sources": [{"text": "nowhere/*.txt"}]}})
    done = snakemake(tmp_path, "-n", "--configfile", str(bad), check=False)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("config error: ")]
    assert len(errors) == 1 and "nowhere/*.txt" in errors[0], done.stderr


def test_local_text_files_are_tracked_inputs(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    for i in range(3):
        (tmp_path / "docs" / f"{i}.txt").write_text(f"document {i} " * 50)
    extra = write_config(tmp_path / "text.yaml", {"corpus": {"sources": [{"text": "docs/*.txt"}]}})
    done = snakemake(tmp_path, "-n", "--configfile", str(extra))
    assert "input: docs/0.txt, docs/1.txt, docs/2.txt" in done.stdout + done.stderr


def test_load_config_merges_configfiles_as_snakemake_does(tmp_path: Path) -> None:
    """Tools outside Snakemake see the config a `--configfile` run sees: mappings merge, lists
    replace, defaults are filled, and a bad override is the same one-line error."""
    default = load_config()
    micro = load_config(MICRO)
    assert [w["width"] for w in micro["widths"]] == [16, 32]  # the list replaced
    assert micro["train"]["steps"] == 40 and micro["train"]["lr"] == default["train"]["lr"]
    assert micro["model"] == default["model"]  # untouched mappings stay
    bad = write_config(tmp_path / "bad.yaml", {"train": {"lr": -1}})
    with pytest.raises(ConfigError, match=r"^train\.lr: "):
        load_config(MICRO, bad)


def test_an_empty_tokenizer_folder_is_refused_before_any_job(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    bad = write_config(tmp_path / "bad.yaml", {"tokenizer": {"pretrained": "empty"}})
    done = snakemake(tmp_path, "--configfile", str(bad), check=False)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("config error: ")]
    assert errors == [
        "config error: tokenizer.pretrained: folder 'empty' holds no HF tokenizer "
        "(none of tokenizer.json, tokenizer_config.json)"
    ], done.stderr
    assert not (tmp_path / "results").exists(), "no job may start on a bad config"


def number_paths(schema: dict, config: object, where: str = "") -> list[tuple[str, object]]:
    """(key, value) of every value in `config` that the schema types as a number only."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "number" in types and "integer" not in types:
        return [(where, config)]
    found = []
    if isinstance(config, dict):
        for key, value in config.items():
            if key in schema.get("properties", {}):
                found += number_paths(schema["properties"][key], value, f"{where}.{key}")
    elif isinstance(config, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(config):
            found += number_paths(schema["items"], value, f"{where}[{i}]")
    return found


def test_every_schema_number_is_a_float() -> None:
    """Written as an integer, a `number` still reads as a float (one setting, one id); integers
    and booleans stay what they are."""
    config = validate_config(
        merged({
            "corpus": {"min_chars": 1},
            "model": {"rotary_pct": 1},
            "widths": [{"width": 64, "heads": 8, "lr": 1}],
            "train": {"betas": [0, 0], "grad_clip": 2, "weight_decay": 0, "min_lr_ratio": 1},
            "summary": {"anisotropy_onset": 0},
            "runtime": {"progress": False},
        })
    )  # fmt: skip
    numbers = number_paths(load_schema(), config)
    keys = {key for key, _ in numbers}
    assert {
        ".model.rotary_pct",
        ".widths[0].lr",
        ".train.betas[1]",
        ".summary.anisotropy_onset",
    } <= keys
    assert all(type(value) is float for _, value in numbers), numbers
    assert type(config["corpus"]["min_chars"]) is int and config["runtime"]["progress"] is False
    assert type(config["widths"][0]["width"]) is int


def test_values_of_a_mapping_given_on_the_command_line_are_read_as_yaml() -> None:
    """`--config 'train={steps: 300, lr: 2e-3}'` hands the values over as strings: they must
    plan exactly what the same values in a config file plan."""
    typed = make_plan(validate_config(merged({"train": {"steps": 300, "lr": 2e-3}})))
    given = make_plan(validate_config(merged({"train": {"steps": "300", "lr": "2e-3"}})))
    assert [s.id for s in given.stages()] == [s.id for s in typed.stages()]
    with pytest.raises(ConfigError, match=r"train.steps: 'many' is not of type 'integer'"):
        validate_config(merged({"train": {"steps": "many"}}))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: {steps: 3\n", r"not valid YAML at line 2, column 1"),
        ("", r"the file is empty"),
        ("- a\n- b\n", r"a config is a mapping of keys, not a list"),
        ("train:\n\tsteps: 3\n", r"not valid YAML at line 2, column 1 \(found character '\\t'"),
    ],
)
def test_a_broken_config_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture, text: str, message: str
) -> None:
    """What Snakemake reports without a file name, `python -m saturation.config` (run by
    `make run CONFIG=…` first) names, with the line."""
    from saturation.config import main, read_config_file

    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: {message}"):
        read_config_file(path)
    assert main([str(path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"config error: {path}: ")
    assert main([str(MICRO)]) == 0
