"""Typed configuration: pydantic models, YAML files under `conf/`, dotted `key=value` overrides.

Every config model derives from `Config` (unknown keys are rejected). `load_config(Model, path, overrides)` reads
the YAML, applies the overrides, validates, and raises one `ConfigError` that lists *every* problem, each with the
dotted key, the bad value and what is allowed.

    cfg = load_config(IndexBuildConfig, "conf/index/demo.yaml", ["embed.batch_size=64", "output=s3://b/idx"])

Each directory of `conf/` holds the files of one schema (`SCHEMAS` below) so that a test can load them all.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base of every config model: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    def config_hash(self) -> str:
        """A short, stable hash of the full config (recorded with every run and index)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class ConfigError(ValueError):
    """One error for all problems of a config; `problems` holds one line each."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"invalid config {source}:\n" + "\n".join(f"  - {p}" for p in problems))


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """`["a.b=1", "c=[x, y]"]` -> ({"a.b": 1, "c": ["x", "y"]}, problems).

    Values are parsed as YAML; `key=@path.yaml` sets a whole section from a YAML file
    (e.g. `storage=@conf/storage/local-s3.yaml`).
    """
    parsed: dict[str, Any] = {}
    problems: list[str] = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"override {item!r} is not of the form key=value (dotted keys, e.g. embed.batch_size=64)")
            continue
        try:
            if raw.startswith("@"):  # key=@file.yaml: a whole section from a file
                parsed[key] = read_yaml(raw[1:])
            else:
                parsed[key] = yaml.safe_load(raw) if raw.strip() else ""
        except FileNotFoundError as e:
            problems.append(f"override {key}: {e}")
        except (yaml.YAMLError, ConfigError) as e:
            problems.append(f"override {key}: value {raw!r} is not valid YAML ({e.__class__.__name__})")
    return parsed, problems


def _apply(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise TypeError(f"override {dotted}: {part!r} is a value ({child!r}), not a section")
        node = child
    node[parts[-1]] = value


def _format_error(err: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key (value {err['input']!r}); check the spelling against the schema"
    if err["type"] == "missing":
        return f"{key}: required key is missing"
    allowed = ""
    ctx = err.get("ctx") or {}
    if "expected" in ctx and str(ctx["expected"]) not in err["msg"]:
        allowed = f"; allowed: {ctx['expected']}"
    return f"{key}: {err['msg']} (got {err.get('input')!r}){allowed}"


def validate_config(
    model: type[C], data: dict[str, Any], source: str = "<dict>", overrides: list[str] | tuple[str, ...] = ()
) -> C:
    """Apply overrides to `data` and validate it as `model`; all problems are reported in one `ConfigError`."""
    data = json.loads(json.dumps(data))  # deep copy, plain types
    parsed, problems = parse_overrides(overrides)
    for key, value in parsed.items():
        try:
            _apply(data, key, value)
        except TypeError as e:
            problems.append(str(e))
    try:
        cfg = model.model_validate(data)
    except ValidationError as e:
        problems.extend(_format_error(err) for err in e.errors())
        cfg = None
    if problems:
        raise ConfigError(source, problems)
    return cfg


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an empty file is an empty mapping."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    with path.open() as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(str(path), [f"not valid YAML: {e}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"top level must be a mapping, got {type(data).__name__}"])
    return data


def load_config(model: type[C], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> C:
    """Load `path` (YAML; None = the model's defaults), apply dotted overrides, validate."""
    data = read_yaml(path) if path is not None else {}
    return validate_config(
        model, data, source=str(path) if path else f"<{model.__name__} defaults>", overrides=overrides
    )
