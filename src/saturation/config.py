"""Config validation: Snakemake's validate() for schema + defaults, then the checks a schema cannot say.

Every error is one line naming the key (`train.lr`, `widths[2].heads`) and the problem, raised
before any job is scheduled.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saturation.model.head_spec import HeadSpec

REPO = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = REPO / "config.yaml"


class ConfigError(ValueError):
    """A configuration problem, worded as `key: problem` on one line."""


def key_path(parts: Sequence[str | int]) -> str:
    """('widths', 2, 'heads') -> 'widths[2].heads'."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<config>"


def _schema_error_line(config: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(validator_cls(schema).iter_errors(config))
    if error is None:  # pragma: no cover - validate() and jsonschema disagree
        return "<config>: invalid"
    where = key_path(list(error.absolute_path))
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        return (
            f"{where}: unknown key {', '.join(map(repr, unknown))} (known keys: {', '.join(known)})"
        )
    if "propertyNames" in error.absolute_schema_path:  # only corpus sources restrict key names
        allowed = error.schema.get("enum", [])
        return f"{where}: unknown source {error.instance!r} (expected one of: {', '.join(allowed)})"
    return f"{where}: {error.message}"


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())


def schema_defaults(schema: Mapping[str, Any]) -> Any:
    """What validate() fills in for an absent value: its `default`, and inside an object the
    defaults of its own properties (those that state one)."""
    value = copy.deepcopy(schema.get("default"))
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = schema_defaults(sub)
    return value


def section_defaults(section: str) -> dict[str, Any]:
    """The schema's defaults of one top-level section, e.g. `runtime`."""
    return schema_defaults(load_schema()["properties"][section])


def validate_config(config: dict[str, Any], schema_path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """Validate in place with Snakemake's validate() (which fills defaults), then check semantics."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    parse_command_line_values(config, load_schema(schema_path))
    try:
        validate(config, str(schema_path), set_default=True)
    except WorkflowError as err:
        raise ConfigError(_schema_error_line(config, load_schema(schema_path))) from err
    normalise_numbers(config, load_schema(schema_path))
    check_semantics(config)
    return config


def parse_command_line_values(value: Any, schema: Mapping[str, Any]) -> Any:
    """Values inside a mapping given on the command line (`--config 'train={steps: 300}'`) reach
    the config as strings ('300'): where the schema has no string type, read them as YAML, as a
    config file's would be. In place; returns the value."""
    import yaml

    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(value, str) and types and "string" not in types:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value  # left for the schema to name
        if isinstance(parsed, str) and "number" in types:  # YAML 1.1 reads 2e-3 as text
            try:
                return float(parsed)
            except ValueError:
                return value
        return parsed
    if isinstance(value, dict):
        properties, other = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            if isinstance(item_schema := properties.get(key, other), Mapping):
                value[key] = parse_command_line_values(item, item_schema)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        value[:] = [parse_command_line_values(item, schema["items"]) for item in value]
    return value


def normalise_numbers(value: Any, schema: Mapping[str, Any], where: tuple = ()) -> Any:
    """Every value the schema types `number` (not also `integer`) as a float, in place: `1` and
    `1.0` are one setting, so they must be one recipe and one id. A value typed `integer` only
    must not be a float, even a whole one: JSON Schema lets `40.0` pass as an integer, and it
    would reach `range()` or a run's name (`w16.0-s0`). Returns the value."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and "number" in types and "integer" not in types:
        return float(value)
    if isinstance(value, float) and "integer" in types and "number" not in types:
        raise ConfigError(f"{key_path(where)}: {value!r} is not an integer (write {value:.0f})")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        other = schema.get("additionalProperties")
        for key, item in value.items():
            item_schema = properties.get(key, other)
            if isinstance(item_schema, Mapping):
                value[key] = normalise_numbers(item, item_schema, (*where, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        value[:] = [normalise_numbers(item, schema["items"], (*where, i))
                    for i, item in enumerate(value)]  # fmt: skip
    return value


def merge_configs(base: Mapping[str, Any], *overrides: Mapping[str, Any]) -> dict[str, Any]:
    """What `--configfile` does on top of the embedded default: Snakemake's own update_config
    (mappings merge, lists replace), on copies."""
    from snakemake.utils import update_config

    config = copy.deepcopy(dict(base))
    for override in overrides:
        update_config(config, copy.deepcopy(dict(override)))
    return config


def load_config(*configfiles: Path, base: Path = DEFAULT_CONFIG) -> dict[str, Any]:
    """The config a workflow run with `--configfile A B …` sees, for tools outside Snakemake:
    the embedded default with each file merged on top, validated with the defaults filled."""
    import yaml

    files = [read_config_file(path) for path in configfiles]
    return validate_config(merge_configs(yaml.safe_load(base.read_text()), *files))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file's mapping; anything else (unreadable, not YAML, empty, a list) is a
    ConfigError naming the file and, for a syntax error, where it is. Snakemake reads
    `--configfile` before any workflow code runs and names neither (`make run CONFIG=FILE`
    checks the file with this first: `python -m saturation.config FILE`)."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot be read ({error})") from error
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from error
    if config is None:
        raise ConfigError(f"{path}: the file is empty (a config is a mapping of keys)")
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys, not a {type(config).__name__}")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m saturation.config FILE…`: each file read and the merged config validated, as
    the workflow would, every error one line naming the file or key."""
    import sys

    files = list(sys.argv[1:] if argv is None else argv)
    try:
        load_config(*map(Path, files))
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 1
    return 0


def check_semantics(config: Mapping[str, Any]) -> None:
    _check_sources(config["corpus"]["sources"])
    _check_tokenizer(config["tokenizer"])
    _check_widths(config)
    _check_checkpoints(config["train"])
    _check_evaluation(config)
    _check_scaling(config)


# What an HF tokenizer folder holds at least one of (AutoTokenizer reads its config or the fast
# tokenizer's own file); checked without loading it, as transformers is slow to import.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def _check_tokenizer(tokenizer: Mapping[str, Any]) -> None:
    path = tokenizer["pretrained"]
    if not path:  # null or "": train a BPE, as the plan reads it
        return
    folder = Path(path)
    if not folder.exists():
        raise ConfigError(f"tokenizer.pretrained: folder {path!r} does not exist")
    if not folder.is_dir():
        raise ConfigError(f"tokenizer.pretrained: {path!r} is not a folder")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError(
            f"tokenizer.pretrained: folder {path!r} holds no HF tokenizer "
            f"(none of {', '.join(TOKENIZER_FILES)})"
        )


def _check_sources(sources: Sequence[Mapping[str, Any]]) -> None:
    from saturation.corpus import BUILTIN_SOURCES

    for i, source in enumerate(sources):
        if "builtin" in source and source["builtin"] not in BUILTIN_SOURCES:
            raise ConfigError(
                f"corpus.sources[{i}].builtin: unknown builtin corpus {source['builtin']!r} "
                f"(available: {', '.join(sorted(BUILTIN_SOURCES))})"
            )


def resolve_shape(entry: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, int]:
    """A width's layers and heads: its own values, else the shape rules of `model`."""
    width = entry["width"]
    heads = entry.get("heads", max(1, width // model["head_dim"]))
    return {"width": width, "layers": entry.get("layers", model["layers"]), "heads": heads}


def resolve_head(entry: Mapping[str, Any], model: Mapping[str, Any]) -> HeadSpec:
    """A width's LM head: its own `head`, else `model.head`."""
    return HeadSpec.of(entry.get("head", model.get("head")))


# the `train` settings a width entry may set for its own run (a sweep lists a width more than
# once, each entry with its own `tag`)
WIDTH_TRAIN_KEYS = ("lr", "weight_decay", "batch_size", "steps")


def resolve_train(entry: Mapping[str, Any], train: Mapping[str, Any]) -> dict[str, Any]:
    """A width's `train` settings: `train` with the entry's own lr, weight_decay, batch_size,
    steps."""
    return dict(train) | {key: entry[key] for key in WIDTH_TRAIN_KEYS if key in entry}


def training_processes(gpus: int) -> int:
    """How many processes train a run: one per GPU asked for, at least one."""
    return max(1, gpus)


def gpus_of(entry: Mapping[str, Any], runtime: Mapping[str, Any]) -> int:
    """GPUs a width's pretraining job asks for: its own `gpus`, else runtime.train_gpus."""
    return entry.get("gpus", runtime["train_gpus"])


def synthetic_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config the synthetic runs see (saturation.plan.synthetic): `train` and `model` with
    `synthetic.train` and `synthetic.model` on top."""
    synthetic = config["synthetic"]
    return dict(
        config,
        train=dict(config["train"]) | synthetic["train"],
        model=dict(config["model"]) | synthetic["model"],
    )


def _check_widths(config: Mapping[str, Any]) -> None:
    """The text runs' widths and the synthetic languages' (`synthetic.widths`, with their own
    model settings), alike."""
    _check_width_list(config, "widths", config["widths"])
    _check_width_list(synthetic_config(config), "synthetic.widths", config["synthetic"]["widths"])


def _check_width_list(config: Mapping[str, Any], key: str, widths: list[Mapping[str, Any]]) -> None:
    model = config["model"]
    seen: dict[tuple[int, HeadSpec, str], int] = {}
    for i, entry in enumerate(widths):
        shape = resolve_shape(entry, model)
        width, heads, head = shape["width"], shape["heads"], resolve_head(entry, model)
        where, tag = f"{key}[{i}]", entry.get("tag", "")
        if (width, head, tag) in seen:
            tagged = f" and tag {tag!r}" if tag else ""
            raise ConfigError(
                f"{where}.width: {width} with the {head.label} head{tagged} is already listed at "
                f"{key}[{seen[width, head, tag]}]; give one of them another `tag`"
            )
        seen[width, head, tag] = i
        if head.kind == "low_rank" and head.size > width:
            raise ConfigError(
                f"{where}.head: low_rank rank {head.size} exceeds the width {width} (a rank-d "
                "head is already full rank)"
            )
        if width % heads:
            raise ConfigError(f"{where}: width {width} is not divisible by heads {heads}")
        processes = training_processes(gpus_of(entry, config["runtime"]))
        train = resolve_train(entry, config["train"])
        batch_size, steps = train["batch_size"], train["steps"]
        late = [(j, mark) for j, mark in enumerate(train["checkpoints"]["steps"]) if mark > steps]
        if "steps" in entry and late:
            raise ConfigError(
                f"{where}.steps: {steps} ends before train.checkpoints.steps[{late[0][0]}] = "
                f"{late[0][1]}"
            )
        if batch_size % processes:
            source = "batch_size" if "batch_size" in entry else "train.batch_size"
            raise ConfigError(
                f"{where}: {source} {batch_size} does not split evenly over {processes} "
                "data-parallel GPUs (gpus / runtime.train_gpus)"
            )
        rotary_dims = int(width // heads * model["rotary_pct"])
        if rotary_dims < 2 or rotary_dims % 2:
            raise ConfigError(
                f"{where}: rotary dims = int(head_dim {width // heads} × model.rotary_pct "
                f"{model['rotary_pct']}) = {rotary_dims}, must be even and ≥ 2"
            )


def _check_checkpoints(train: Mapping[str, Any]) -> None:
    steps = train["steps"]
    for i, step in enumerate(train["checkpoints"]["steps"]):
        if step > steps:
            raise ConfigError(
                f"train.checkpoints.steps[{i}]: step {step} is beyond the last step train.steps = {steps}"
            )


def _check_evaluation(config: Mapping[str, Any]) -> None:
    from saturation.schedule import checkpoint_steps

    evaluation, train = config["evaluation"], config["train"]
    for task, files in evaluation["local_data"].items():
        if task not in evaluation["tasks"]:
            raise ConfigError(
                f"evaluation.local_data.{task}: {task!r} is not listed in evaluation.tasks"
            )
        for split, path in files.items():
            if not Path(path).exists():
                raise ConfigError(f"evaluation.local_data.{task}.{split}: {path!r} does not exist")
            if not Path(path).is_file():
                raise ConfigError(f"evaluation.local_data.{task}.{split}: {path!r} is not a file")
    marks = train["checkpoints"]
    # the schedule of the text runs (the evaluated ones): train.steps', and any width's own
    lengths = {"": train["steps"]} | {
        f" of widths[{i}]": width["steps"]
        for i, width in enumerate(config["widths"])
        if "steps" in width
    }
    for of, steps in lengths.items():
        schedule = set(checkpoint_steps(steps, marks["log_until"], marks["every"], marks["steps"]))
        for i, entry in enumerate(evaluation["checkpoints"]["include"]):
            if entry.isdigit() and int(entry) not in schedule:
                raise ConfigError(
                    f"evaluation.checkpoints.include[{i}]: step {entry} is not a checkpoint step"
                    f"{of} (schedule: {sorted(schedule)})"
                )


def _check_scaling(config: Mapping[str, Any]) -> None:
    """The law needs the runs it is fitted on: a threshold (that it leaves two model sizes is
    checked with the plan's runs, saturation.plan.build)."""
    scaling = config["scaling"]
    if scaling["enabled"] and scaling["min_width"] is None and scaling["min_parameters"] is None:
        raise ConfigError(
            "scaling: set min_width or min_parameters (the runs the law is fitted on)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
