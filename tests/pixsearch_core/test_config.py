"""Typed configs: overrides, unknown keys, all errors at once, and every file in conf/ loads."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from jobs.config import SCHEMAS, schema_for
from pixsearch_core.config import Config, ConfigError, load_config, parse_overrides, read_yaml, validate_config

CONF = Path(__file__).resolve().parents[2] / "conf"


class Inner(Config):
    batch_size: int = Field(32, ge=1)
    device: Literal["cpu", "cuda"] = "cpu"


class Outer(Config):
    name: str = "x"
    inner: Inner = Inner()
    tags: list[str] = []


def test_overrides_are_dotted_and_typed():
    cfg = validate_config(Outer, {"name": "a"}, overrides=["inner.batch_size=64", "tags=[p, q]", "inner.device=cuda"])
    assert cfg.inner.batch_size == 64 and cfg.inner.device == "cuda" and cfg.tags == ["p", "q"] and cfg.name == "a"


def test_all_problems_in_one_error_naming_key_value_and_allowed():
    with pytest.raises(ConfigError) as ei:
        validate_config(Outer, {"nmae": "typo"}, overrides=["inner.batch_size=0", "inner.device=tpu", "junk"])
    msg = str(ei.value)
    assert len(ei.value.problems) == 4, ei.value.problems
    assert "nmae: unknown key" in msg
    assert "inner.batch_size" in msg and "got 0" in msg and "greater than or equal to 1" in msg
    assert "inner.device" in msg and "'tpu'" in msg and "'cpu' or 'cuda'" in msg
    assert "'junk' is not of the form key=value" in msg


def test_override_into_scalar_is_an_error():
    with pytest.raises(ConfigError, match="'name' is a value"):
        validate_config(Outer, {"name": "a"}, overrides=["name.sub=1"])
    with pytest.raises(ConfigError, match="name: Input should be a valid string"):
        validate_config(Outer, {}, overrides=["name.sub=1"])


def test_parse_overrides_yaml_values():
    parsed, problems = parse_overrides(["a=1", "b=true", "c=null", "d=s3://x/y", "e="])
    assert parsed == {"a": 1, "b": True, "c": None, "d": "s3://x/y", "e": ""} and problems == []


def test_load_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_config_hash_changes_with_values():
    assert Outer().config_hash() == Outer().config_hash()
    assert Outer().config_hash() != Outer(name="y").config_hash()


#: the schema each command loads its --config with (eval run goes through its own loader: jobs/eval/run.py `load`)
COMMAND_SCHEMAS = {
    "index": "indexing.config:IndexBuildConfig",
    "train": "pixsearch_core.training.config:TrainConfig",
    "demo": "pipelines.demo.config:DemoConfig",
    "data": "pixsearch_core.stage2.config:Stage2Config",
}


def _first_command(path: Path) -> list[str]:
    """The argv of the command line a conf file's first line names: `# pixsearch ARGS  (notes)`."""
    first = path.read_text().splitlines()[0]
    assert first.startswith("# pixsearch "), f"{path}: first line must be '# pixsearch <command that reads it>'"
    return shlex.split(first[len("# pixsearch ") :].split("  ")[0])


def _load_through(argv: list[str]):
    """Parse argv with the real `pixsearch` parser and load its config the way that command does."""
    import importlib

    from jobs.cli import build_parser

    args = build_parser().parse_args(argv)
    if args.command == "eval":
        from jobs.eval.run import load

        return load(args)[0]
    module, _, cls = COMMAND_SCHEMAS[args.command].partition(":")
    return load_config(getattr(importlib.import_module(module), cls), args.config, args.overrides)


@pytest.mark.parametrize("path", sorted(CONF.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF)))
def test_every_conf_file_is_read_by_the_command_its_first_line_names(path, monkeypatch):
    monkeypatch.chdir(CONF.parent)
    rel = str(path.relative_to(CONF.parent))
    argv = _first_command(path)
    assert rel in argv or any(a.endswith("=@" + rel) for a in argv), f"{rel}: its command line does not use it"
    cfg = _load_through(argv)
    section = next((a.partition("=@")[0] for a in argv if a.endswith("=@" + rel)), None)
    if section is not None:  # key=@file: the section IS the file's content, validated by the section's schema
        got = getattr(cfg, section)
        assert got == type(got).model_validate(read_yaml(path)), f"{rel} did not land in `{section}`"
    assert path.parent.name in SCHEMAS  # `pixsearch config` validates it too
    load_config(schema_for(path.parent.name), path)


def test_conf_has_files():
    assert list(CONF.rglob("*.yaml"))


def test_section_from_file(tmp_path):
    f = tmp_path / "inner.yaml"
    f.write_text("batch_size: 7\n")
    cfg = validate_config(Outer, {}, overrides=[f"inner=@{f}"])
    assert cfg.inner.batch_size == 7
    with pytest.raises(ConfigError, match="does not exist"):
        validate_config(Outer, {}, overrides=[f"inner=@{tmp_path}/missing.yaml"])
