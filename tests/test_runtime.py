"""The runtime options: one object from the schema's defaults, the config and the job."""

from __future__ import annotations

import copy
import pickle

import pytest

from saturation.config import section_defaults
from saturation.runtime import Runtime, resolve_device


def test_defaults_come_from_the_schema_then_the_config_then_the_job() -> None:
    runtime = Runtime.from_config({"device": "cpu", "log_every": 3}, threads=2, processes=4)
    assert runtime.device == "cpu" and runtime.log_every == 3  # the config's
    assert runtime.progress is section_defaults("runtime")["progress"]  # the schema's
    assert (runtime.threads, runtime.processes, runtime.stop_at_step) == (2, 4, None)  # the job's
    assert dict(Runtime.from_config()) == {**Runtime.JOB_DEFAULTS, **section_defaults("runtime")}


def test_a_new_option_needs_no_code_here() -> None:
    """An option the schema gains reaches the code that reads it through this object as is."""
    assert Runtime.from_config({"pin_memory": True}).pin_memory is True
    with pytest.raises(AttributeError, match="runtime has no option 'pin_memory'"):
        _ = Runtime.from_config().pin_memory


def test_read_only_and_carried_whole_across_a_launch() -> None:
    runtime = Runtime.from_config({"device": "cpu"}, threads=1)
    with pytest.raises(AttributeError, match="read-only"):
        runtime.device = "cuda"
    assert Runtime.from_json(runtime.to_json()) == runtime  # what torchrun's workers get
    assert runtime.replace(threads=3).threads == 3 and runtime.threads == 1
    assert copy.deepcopy(runtime) == runtime and pickle.loads(pickle.dumps(runtime)) == runtime


def test_auto_device_is_the_gpu_where_there_is_one() -> None:
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
