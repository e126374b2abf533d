"""`pixsearch config`: validate config files and print the resolved config."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from pixsearch_core.config import Config, load_config

NAME = "config"
HELP = "validate YAML configs under conf/ (with overrides) and print the resolved values"
DESCRIPTION = """Validate config files against their schema (chosen by the conf/ sub-directory) and print the
resolved config as JSON. All problems are reported at once.

  pixsearch config conf/storage/local-s3.yaml endpoint_url=http://127.0.0.1:9000
  pixsearch config conf/**/*.yaml --schema storage"""


#: conf/<dir>/*.yaml -> "module:Class" of the schema that validates those files.
SCHEMAS: dict[str, str] = {
    "storage": "pixsearch_core.storage:StorageConfig",
    "demo": "pipelines.demo.config:DemoConfig",
    "eval": "pixsearch_core.evaluation.config:EvalRunConfig",
    "train": "pixsearch_core.training.config:TrainConfig",
    "model": "pixsearch_core.modeling.spec:ModelSpec",
    "decode": "pixsearch_core.decoding.options:DecodeOptions",
    "index": "indexing.config:IndexBuildConfig",
    "data": "pixsearch_core.stage2.config:Stage2Config",
}


def schema_for(conf_dir: str) -> type[Config]:
    """The config model for files under `conf/<conf_dir>/`."""
    if conf_dir not in SCHEMAS:
        raise KeyError(f"no config schema for conf/{conf_dir}/; known: {', '.join(sorted(SCHEMAS))}")
    module, _, cls = SCHEMAS[conf_dir].partition(":")
    return getattr(importlib.import_module(module), cls)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="config files, then optional dotted key=value overrides")
    p.add_argument("--schema", help="schema name (default: the file's directory under conf/)")


def run(args: argparse.Namespace) -> int:
    files = [f for f in args.files if "=" not in f]
    overrides = [f for f in args.files if "=" in f]
    for f in files:
        name = args.schema or Path(f).parent.name
        if name not in SCHEMAS:
            raise ValueError(f"{f}: no schema for directory {name!r}; pass --schema, one of {sorted(SCHEMAS)}")
        cfg = load_config(schema_for(name), f, overrides)
        print(json.dumps({"file": f, "schema": name, "config": cfg.model_dump(mode="json")}, indent=2))
    return 0
