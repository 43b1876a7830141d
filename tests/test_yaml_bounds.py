"""Every YAML input of andon goes through one bounded loader: hostile documents are refused
fast, each with a message that names the problem and its place."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from andon.model.loader import MAX_ALIASES, ModelError, parse_plant, safe_load
from andon.platform.config import ConfigError, load_settings

BOMBS = {
    "laughs": (
        "a: &a [x,x,x,x,x,x,x,x,x]\n"
        + "".join(
            f"{k}: &{k} [{','.join(['*' + p] * 9)}]\n"
            for p, k in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "more than 100,000 values once aliases are expanded",
    ),
    "aliases": ("a: &a x\nb: [" + ",".join(["*a"] * (MAX_ALIASES + 1)) + "]\n", "aliases"),
    "self": ("a: &a [*a]\n", "an alias refers to a node that contains it"),
    "deep": ("[" * 3000 + "]" * 3000, "nested deeper than 64 levels"),
    "digits": ("a: " + "9" * 100_000, "cannot read this value"),
    "year": ("a: !!timestamp 99999-01-01\n", "not a valid timestamp"),
    "nul": ('a: "x\\0y"\n', "NUL characters"),
    "surrogate": ('a: "x\\ud800"\n', "UTF-16 surrogates"),
}


@pytest.mark.parametrize("case", sorted(BOMBS))
def test_hostile_yaml_is_refused_fast_naming_why(case: str) -> None:
    text, why = BOMBS[case]
    t0 = time.perf_counter()
    for parse in (parse_plant, safe_load):
        with pytest.raises(ModelError, match=why) as info:
            parse(text, "bomb.yaml")
        assert str(info.value).startswith("bomb.yaml:")
    assert time.perf_counter() - t0 < 10.0  # unbounded, the bomb takes minutes to hours


def test_serve_config_uses_the_bounded_loader(tmp_path: Path) -> None:
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("port: &p 8080\nhost: [*p, *p]\n" + "x: " + "[" * 100 + "]" * 100 + "\n")
    with pytest.raises(ConfigError, match="nested deeper than 64 levels"):
        load_settings(cfg, env={})


def test_ordinary_yaml_still_loads() -> None:
    assert safe_load("a: &a {x: 1}\nb: *a\nc: [1, 2.5, '2024-01-01']\n") == {
        "a": {"x": 1},
        "b": {"x": 1},
        "c": [1, 2.5, "2024-01-01"],
    }
    assert safe_load("") is None
