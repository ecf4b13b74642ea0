"""Content addressing: ids follow recipes exactly, so a change reruns exactly its subtree."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from saturation import plan as plan_module
from saturation.config import ConfigError, validate_config
from saturation.plan import make_plan, stage_id, write_plan_records
from saturation.plan.pretrained import model_name
from saturation.plan.stages import FORMAT_VERSIONS, RECORD_VERSIONS
from saturation.tables import runs_table
from saturation.tokenizer import pretrained_tokenizer
from tests.conftest import ROOT
from tests.test_config import merged


@pytest.fixture
def config() -> dict:
    text_runs = [{"width": 32}, {"width": 64}, {"width": 128}]
    return validate_config(merged({"widths": text_runs, "synthetic": {"languages": []}}))


def ids(plan: plan_module.Plan) -> dict[tuple[str, str], str]:
    return {(s.stage, s.name): s.id for s in plan.stages()}


def test_ids_are_stable_and_distinct(config: dict) -> None:
    first, second = ids(make_plan(config)), ids(make_plan(copy.deepcopy(config)))
    assert first == second
    assert len(set(first.values())) == len(first)
    assert all(len(i) == plan_module.ID_LENGTH for i in first.values())


def test_one_learning_rate_change_moves_only_that_run(config: dict) -> None:
    before = ids(make_plan(config))
    changed = copy.deepcopy(config)
    changed["widths"][1]["lr"] = 5e-4
    after = ids(make_plan(changed))
    moved = {key for key in before if before[key] != after[key]}
    stages = ("pretrain", "harvest", "analyze", "evaluate", "heads")
    expected = {(stage, "w64-s0") for stage in stages}
    assert moved == expected | {
        ("tables", "tables"),
        ("summary", "summary"),
        ("figures", "figures"),
    }
    assert ids(make_plan(config)) == before  # reverting finds the old ids again


def test_a_width_listed_again_with_its_own_training_settings(config: dict) -> None:
    """A weight-decay / batch-size sweep in one config: the tagged entry is a run of its own
    (`w64-wd0-s0`) with its own recipe; the untagged runs keep their ids; the runs table says
    what each run was trained with."""
    before = ids(make_plan(config))
    swept = copy.deepcopy(config)
    swept["widths"] += [
        {"width": 64, "weight_decay": 0.0, "tag": "wd0"},
        {"width": 64, "batch_size": 8, "steps": 800, "tag": "bs8"},
    ]
    plan = make_plan(validate_config(swept))
    after = ids(plan)
    assert {
        key: after[key] for key in before if key[1] not in ("tables", "summary", "figures")
    } == {key: before[key] for key in before if key[1] not in ("tables", "summary", "figures")}
    train = {name: plan.runs[name].pretrain.recipe["train"] for name in plan.runs}
    assert (train["w64-wd0-s0"]["weight_decay"], train["w64-wd0-s0"]["batch_size"]) == (0.0, 16)
    assert (train["w64-bs8-s0"]["weight_decay"], train["w64-bs8-s0"]["batch_size"]) == (0.1, 8)
    # equal tokens in twice the steps: its own schedule, warmup and checkpoints
    assert (train["w64-bs8-s0"]["steps"], train["w64-bs8-s0"]["warmup_steps"]) == (800, 8)
    assert train["w64-bs8-s0"]["checkpoint_steps"][-3:] == [600, 700, 800]
    assert train["w64-s0"]["checkpoint_steps"][-1] == 400
    assert train["w64-wd0-s0"] | {"weight_decay": 0.1} == train["w64-s0"]
    assert (
        model_name("w64-wd0-s0") == "w64-wd0"
        and model_name("r8-w4-mos4-bs8-s1") == "r8-w4-mos4-bs8"
    )
    runs = runs_table(plan.tables.recipe["runs"]).set_index("run")
    assert runs.loc["w64-bs8-s0", ["batch_size", "steps"]].tolist() == [8, 800]
    assert runs.loc["w64-wd0-s0", ["weight_decay", "batch_size", "lr", "tag"]].tolist() == [
        0.0,
        16,
        1e-3,
        "wd0",
    ]
    assert runs.loc["w64-s0", "weight_decay"] == 0.1 and pd.isna(runs.loc["w64-s0", "tag"])


def test_runtime_knobs_do_not_change_ids(config: dict) -> None:
    changed = copy.deepcopy(config)
    changed["runtime"] |= {"device": "cpu", "train_threads": 2, "log_every": 3, "progress": False}
    assert ids(make_plan(changed)) == ids(make_plan(config))


def test_upstream_change_propagates(config: dict) -> None:
    changed = copy.deepcopy(config)
    changed["tokenizer"]["vocab_size"] = 1024
    before, after = ids(make_plan(config)), ids(make_plan(changed))
    unchanged = {k for k in before if before[k] == after[k]}
    assert unchanged == {("corpus", "corpus"), ("evaltasks", "heldout-tasks")}


def test_text_changes_leave_the_synthetic_runs_alone() -> None:
    """The default's bottleneck sweep has its own tokens and tokenizer: a text recipe cannot move it."""
    config = validate_config(merged({}))
    changed = copy.deepcopy(config)
    changed["tokenizer"]["vocab_size"] = 1024
    changed["train"]["lr"] = 1e-3
    before, after = ids(make_plan(config)), ids(make_plan(changed))
    synthetic = {key for key in before if key[1].startswith("r8")}
    assert {stage for stage, _ in synthetic} >= {"language", "oracle", "pretrain", "analyze"}
    assert all(before[key] == after[key] for key in synthetic)


def test_format_version_is_part_of_the_id(monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = {"a": 1}
    old = stage_id("harvest", recipe)
    monkeypatch.setitem(plan_module.FORMAT_VERSIONS, "harvest", 99)
    assert stage_id("harvest", recipe) != old


def test_runs_are_width_times_seed(config: dict) -> None:
    config["train"]["seeds"] = [0, 1]
    plan = make_plan(config)
    assert sorted(plan.runs) == sorted(f"w{w}-s{s}" for w in (32, 64, 128) for s in (0, 1))
    assert plan.runs["w64-s1"].pretrain.recipe["train"]["seed"] == 1
    assert plan.runs["w64-s1"].pretrain.recipe["model"]["heads"] == 2  # head_dim 32 rule


def test_records_written_once_and_index_keeps_history(config: dict, tmp_path: Path) -> None:
    config["results"] = str(tmp_path / "results")
    plan = make_plan(config)
    write_plan_records(plan)
    recipe = Path(plan.corpus.dir) / "recipe.json"
    assert yaml.safe_load(recipe.read_text())["id"] == plan.corpus.id
    mtime = recipe.stat().st_mtime_ns
    changed = copy.deepcopy(config)
    changed["widths"][0]["lr"] = 2e-3
    write_plan_records(make_plan(changed))
    assert recipe.stat().st_mtime_ns == mtime  # never rewritten
    index = (tmp_path / "results" / "index.csv").read_text()
    pretrain_rows = [line for line in index.splitlines() if line.startswith("pretrain,")]
    assert len(pretrain_rows) == 4  # three runs + the old recipe of w32


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xfe\x00binary", b"stage,id\npretrain\n", b"stage,id,name,path\na,b\n"],
    ids=["not text", "other columns", "short row"],
)
def test_an_unreadable_index_is_rebuilt_and_the_plan_wins(
    config: dict, tmp_path: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    config["results"] = str(tmp_path / "results")
    old = copy.deepcopy(config)
    old["widths"][0]["lr"] = 2e-3
    write_plan_records(make_plan(old))  # an older config's stages: their recipe.json stay
    index = tmp_path / "results" / "index.csv"
    index.write_bytes(garbage)
    plan = make_plan(config)
    write_plan_records(plan)
    assert "index.csv is unreadable" in caplog.text
    rows = pd.read_csv(index)
    assert set(rows["id"]) == {s.id for s in plan.stages()} | {
        s.id for s in make_plan(old).stages()
    }
    stale = rows.copy()
    stale.loc[stale["id"] == plan.corpus.id, "path"] = "/moved/away"
    stale.to_csv(index, index=False)
    write_plan_records(plan)  # the current plan's rows win over what the file says
    rows = pd.read_csv(index).set_index("id")
    assert rows.loc[plan.corpus.id, "path"] == plan.corpus.dir


def test_a_new_task_keeps_every_other_tasks_records(config: dict, tmp_path: Path) -> None:
    """A task added moves each run's evaluate stage (one job per run), but not the key of any
    other task's stored record: the rerun job evaluates the new task alone."""
    from saturation.evaluate.lmeval import task_recipe

    data = tmp_path / "sciq.jsonl"
    data.write_text('{"question": "q"}\n')
    plan = make_plan(config)
    changed = copy.deepcopy(config)
    changed["evaluation"]["tasks"].append("sciq")
    changed["evaluation"]["local_data"] = {"sciq": {"test": str(data)}}
    after = make_plan(changed)
    assert set(ids(after)) - set(ids(plan)) == {("evaltasks", "sciq")}
    moved = {k for k in ids(plan) if ids(plan)[k] != ids(after)[k]}
    assert {stage for stage, _ in moved} == {"evaluate", "tables", "summary", "figures"}
    for name, run in plan.runs.items():
        new = after.runs[name].evaluate.recipe
        assert new["tasks"]["sciq"] == after.evaltasks["sciq"].id
        for task in config["evaluation"]["tasks"]:
            assert task_recipe(new, task) == task_recipe(run.evaluate.recipe, task)


def test_only_a_best_selection_ties_evaluation_to_the_analysis(config: dict) -> None:
    """An analysis setting changes the evaluate stage only when the selection reads the
    lowest-loss step from the analysis."""
    changed = copy.deepcopy(config)
    changed["analysis"]["val_tokens"] = 512
    run, moved = make_plan(config).runs["w64-s0"], make_plan(changed).runs["w64-s0"]
    assert ("best" in config["evaluation"]["checkpoints"]["include"]) == (
        run.evaluate.id != moved.evaluate.id
    )
    no_best = copy.deepcopy(config)
    no_best["evaluation"]["checkpoints"]["include"] = ["final"]
    no_best_changed = copy.deepcopy(no_best) | {"analysis": changed["analysis"]}
    assert "analyze" not in make_plan(no_best).runs["w64-s0"].evaluate.recipe
    assert (
        make_plan(no_best).runs["w64-s0"].evaluate.id
        == make_plan(no_best_changed).runs["w64-s0"].evaluate.id
    )


def test_summary_settings_move_only_the_summary(config: dict) -> None:
    """The figures read the tidy tables, not the summary: a summary setting reruns the summary."""
    before = ids(make_plan(config))
    for key, value in (("collapse_kl_fraction", 0.3), ("anisotropy_onset", 0.8)):
        changed = copy.deepcopy(config)
        changed["summary"][key] = value
        after = ids(make_plan(changed))
        assert {k for k in before if before[k] != after[k]} == {("summary", "summary")}, key


def test_figure_options_move_only_the_figures(config: dict) -> None:
    """What a figure shows is the figures' recipe alone; the coverage of the intervals is the
    summary's and the figures' (their seed bands)."""
    before = ids(make_plan(config))
    for section, key, value, moved in (
        ("figures", "head", "centred", {("figures", "figures")}),
        ("summary", "confidence", 0.9, {("figures", "figures"), ("summary", "summary")}),
    ):
        changed = copy.deepcopy(config)
        changed[section][key] = value
        after = ids(make_plan(changed))
        assert {k for k in before if before[k] != after[k]} == moved, key


def test_number_spelling_does_not_change_ids() -> None:
    """`1` and `1.0` are one setting: every schema `number` is a float after validation."""

    def spelled(one: object, zero: object) -> dict:
        return {
            "model": {"rotary_pct": one},
            "widths": [{"width": 64, "heads": 8, "lr": one}],
            "train": {"grad_clip": one, "betas": [zero, 0.5], "weight_decay": zero},
            "summary": {"anisotropy_onset": zero},
        }

    as_ints = ids(make_plan(validate_config(merged(spelled(1, 0)))))
    as_floats = ids(make_plan(validate_config(merged(spelled(1.0, 0.0)))))
    assert as_ints == as_floats
    other = ids(make_plan(validate_config(merged(spelled(1.0, 0.1)))))
    assert other != as_floats  # a real change still moves ids


def reversed_keys(value: object) -> object:
    """The same config with every mapping's keys in the opposite order."""
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(item) for item in value]
    return value


def test_recipes_read_the_same_whatever_the_key_order(config: dict) -> None:
    """Rules pass recipes as params, which Snakemake compares as text: the text may depend on
    what the recipe says only, never on the order the config's keys came in."""
    plan, shuffled = make_plan(config), make_plan(validate_config(reversed_keys(config)))
    texts = [(s.stage, s.name, repr(s.recipe)) for s in plan.stages()]
    assert texts == [(s.stage, s.name, repr(s.recipe)) for s in shuffled.stages()]


def test_a_pretrained_tokenizer_is_its_files(tmp_path: Path) -> None:
    """Its id hashes the folder's files (vocab_size does not apply); the job checks the files are
    still those before copying them."""
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}")
    pretrained = merged({"tokenizer": {"pretrained": str(folder)}})
    plan = make_plan(validate_config(copy.deepcopy(pretrained)))
    other_vocab = copy.deepcopy(pretrained)
    other_vocab["tokenizer"]["vocab_size"] = 1024
    assert ids(make_plan(validate_config(other_vocab))) == ids(plan)
    assert pretrained_tokenizer(plan.tokenizer.recipe, str(folder)) == str(folder)
    (folder / "tokenizer.json").write_text('{"changed": true}')
    with pytest.raises(ValueError, match=r"^tokenizer\.pretrained: .* changed"):
        pretrained_tokenizer(plan.tokenizer.recipe, str(folder))


def test_rules_and_input_functions_read_one_template(config: dict) -> None:
    """A rule's output pattern, its id and fields filled in, is the path input functions ask the
    same stage for: each file is named once, in its kind's template."""
    plan = make_plan(config)
    run = plan.runs["w64-s0"]
    for stage in (run.analyze, run.harvest, run.evaluate, run.pretrain):
        for role in plan_module.KINDS[stage.stage].files:
            pattern = plan.pattern(stage.stage, role).replace(f"{{{stage.stage}_id}}", stage.id)
            assert pattern.format(step=4) == stage.file(role, step=4), (stage.stage, role)
    assert plan.tokens.file("bin") == f"{plan.tokens.dir}/{{split}}.bin"  # unfilled: a wildcard
    assert plan.tokens.file("bin", split="val") == f"{plan.tokens.dir}/val.bin"
    with pytest.raises(KeyError, match="writes no 'model'"):
        run.analyze.file("model")


def test_a_job_finds_its_stage_and_run_from_the_id(config: dict) -> None:
    plan = make_plan(config)
    for run in plan.runs.values():
        for stage in run.stages():
            assert plan.find(stage.id) == (stage, run)
    assert plan.find(plan.tokens.id) == (plan.tokens, None)
    with pytest.raises(KeyError, match="no stage of this plan has id 000000000000"):
        plan.find("0" * 12)
    harvests = {run.harvest.id for run in plan.runs.values()}
    assert set(plan.ids("harvest", source="pretrain").split("|")) == harvests
    assert plan.ids("harvest", source="elsewhere") == "-"  # a constraint no id matches


def test_runs_are_keyed_by_name_with_attributes(config: dict) -> None:
    plan = make_plan(config)
    run = plan.runs["w128-s0"]
    assert run.source == "pretrain" and run.harvest_rule == "harvest"
    assert dict(run.attributes) == {"family": "gpt_neox", "width": 128, "layers": 2, "seed": 0,
                                    "head": "linear", "logit_rank": 128, "lr": 1e-3,
                                    "weight_decay": 0.1, "batch_size": 16,
                                    "steps": 400}  # fmt: skip
    assert plan.tables.recipe["runs"]["w128-s0"] == {
        "source": "pretrain",
        "attributes": dict(run.attributes),
        "analyze": run.analyze.id,
        "evaluate": run.evaluate.id,
    }


def test_two_runs_of_one_name_are_refused(config: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every table row is keyed by run name: a second source naming a run the same is an error."""
    from saturation.config import ConfigError
    from saturation.plan import build
    from saturation.plan.pretrained import pretrained_runs

    monkeypatch.setattr(build, "RUN_SOURCES", (pretrained_runs, pretrained_runs))
    with pytest.raises(ConfigError, match="run 'w32-s0' is configured twice"):
        make_plan(config)


def test_the_scaling_stage_exists_only_where_enabled(config: dict) -> None:
    """Off by default, so the default's ids stay; on, it reads the tables, and its settings move
    only it and the figures that draw it."""
    plan = make_plan(config)
    assert plan.scaling is None and "scaling" not in plan.figures.recipe
    config["scaling"] |= {"enabled": True, "min_width": 64}
    enabled = make_plan(config)
    assert enabled.scaling.recipe["tables"] == plan.tables.id
    assert enabled.figures.recipe["scaling"] == enabled.scaling.id
    before = ids(enabled)
    config["scaling"]["E"] = 1.0
    after = ids(make_plan(config))
    assert {k for k in before if before[k] != after[k]} == {("scaling", "scaling"),
                                                           ("figures", "figures")}  # fmt: skip


def test_each_head_is_a_run_of_its_own(config: dict) -> None:
    """A width listed with other heads trains once per head, named by it; the linear head's
    recipe has no head entry, so its ids are those of the runs before heads existed."""

    config["widths"] = [
        {"width": 32},
        {"width": 32, "head": "tied"},
        {"width": 32, "head": {"low_rank": {"rank": 4}}},
        {"width": 32, "head": {"mixture_of_softmaxes": {"components": 2}}},
    ]
    runs = make_plan(config).runs
    assert sorted(runs) == ["w32-lowrank4-s0", "w32-mos2-s0", "w32-s0", "w32-tied-s0"]
    assert "head" not in runs["w32-s0"].pretrain.recipe["model"]
    assert runs["w32-lowrank4-s0"].pretrain.recipe["model"]["head"] == {
        "kind": "low_rank",
        "rank": 4,
    }
    assert runs["w32-mos2-s0"].attributes["head"] == "MoS k=2"
    assert runs["w32-lowrank4-s0"].attributes["logit_rank"] == 4
    assert model_name("w32-mos2-s1") == "w32-mos2" and model_name("r8-w4-tied-s0") == "r8-w4-tied"
    config["model"]["head"] = "tied"  # the global default, for every width without its own
    config["widths"] = [{"width": 32}, {"width": 64, "head": "linear"}]
    assert sorted(make_plan(config).runs) == ["w32-tied-s0", "w64-s0"]


def test_the_scaling_law_sees_text_runs_only() -> None:
    """A synthetic language's losses are of another text: its runs are neither fitted nor
    counted as model sizes by the scaling stage."""
    config = validate_config(merged({"widths": [{"width": 32}], "scaling": {
        "enabled": True, "min_width": 4}}))  # fmt: skip
    with pytest.raises(ConfigError, match=r"scaling.min_width: 4 leaves widths \[32\]"):
        make_plan(config)  # the default's synthetic widths 4–16 do not count
    config["widths"] = [{"width": 32}, {"width": 64}]
    plan = make_plan(config)
    assert sorted(plan.text_runs) == ["w32-s0", "w64-s0"] and len(plan.runs) > 2


def test_the_ngram_stage_reads_the_text_tokens_when_runs_train_on_them(config: dict) -> None:
    plan = make_plan(config)
    assert plan.ngram.recipe["tokens"] == plan.tokens.id and plan.ngram.recipe["n"] == 5
    assert plan.figures.recipe["ngram"] == plan.ngram.id
    config["ngram"]["enabled"] = False
    assert make_plan(config).ngram is None
    config["ngram"]["enabled"] = True
    config["widths"] = []  # a synthetic language alone: no text tokens to build for it
    config["synthetic"]["languages"] = [{"name": "r4", "vocab": 16, "rank": 4}]
    config["synthetic"]["widths"] = [{"width": 8}]
    assert make_plan(validate_config(config)).ngram is None


def test_head_sweeps_are_planned_for_the_selected_text_widths(config: dict) -> None:
    """`heads.widths` picks the runs on text whose final checkpoints are swept (the default's:
    32 and 64), each with its rank grid up to its width; a synthetic language's runs never are.
    The sweep's settings move its id and those of the tables read from it, nothing upstream."""
    plan = make_plan(config)
    swept = {name: run.heads for name, run in plan.runs.items() if run.heads is not None}
    assert sorted(swept) == ["w32-s0", "w64-s0"]
    assert swept["w32-s0"].recipe["ranks"] == [2, 4, 8, 16, 32]
    assert swept["w64-s0"].recipe["ranks"] == [2, 4, 8, 16, 32, 64]
    assert swept["w32-s0"].recipe["checkpoints"] == ["final"]
    assert "analyze" not in swept["w32-s0"].recipe
    assert plan.find(swept["w64-s0"].id)[1].name == "w64-s0"
    before = ids(plan)
    config["heads"]["lrs"] = [1e-3]
    config["heads"]["checkpoints"] = ["best", "final"]
    after = ids(make_plan(config))
    changed = {key for key in before if before[key] != after.get(key)}
    tables = {("tables", "tables"), ("summary", "summary"), ("figures", "figures")}
    assert changed == {("heads", "w32-s0"), ("heads", "w64-s0")} | tables
    assert (
        make_plan(config).runs["w32-s0"].heads.recipe["analyze"] == plan.runs["w32-s0"].analyze.id
    )
    config["heads"]["widths"] = None  # every text run
    every = make_plan(config)
    assert {name for name, run in every.runs.items() if run.heads} == set(every.text_runs)
    config["heads"]["enabled"] = False
    assert all(run.heads is None for run in make_plan(config).runs.values())


def test_the_design_notes_list_every_stage_and_record_at_its_version() -> None:
    """DESIGN-NOTES' "Format versions" tables are where a bump is explained: they must name every
    stage kind and every record kind at the version the code hashes into ids and keys."""
    notes = (ROOT / "docs" / "DESIGN-NOTES.md").read_text()
    section = notes.split("## Format versions", 1)[1].split("\n## ", 1)[0]
    listed: dict[str, dict[str, int]] = {}
    table = None
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1] == "version":
            table = listed.setdefault(cells[0], {})
        elif table is not None and len(cells) >= 2 and cells[1].isdigit():
            table[cells[0]] = int(cells[1])
    assert listed == {"stage": FORMAT_VERSIONS, "record": RECORD_VERSIONS}
