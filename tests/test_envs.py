"""The conda environment of the rules is rendered from requirements.lock and must not drift."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT


def test_conda_env_matches_the_lock() -> None:
    spec = importlib.util.spec_from_file_location("render", ROOT / "envs" / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    expected = render.render()
    actual = (ROOT / "envs" / "saturation.yaml").read_text()
    assert actual == expected, "envs/saturation.yaml is stale: run `python envs/render.py`"


def test_lock_pins_everything_but_torch() -> None:
    lines = [
        line
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert all("==" in line for line in lines)
    assert not [line for line in lines if line.split("==")[0] in {"torch", "saturation-lab"}]
