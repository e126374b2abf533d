"""`pixsearch config`: validate config files and print the resolved config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "config"
HELP = "validate YAML configs under conf/ (with overrides) and print the resolved values"
DESCRIPTION = """Validate config files against their schema (chosen by the conf/ sub-directory) and print the
resolved config as JSON. All problems are reported at once.

  pixsearch config conf/storage/local-s3.yaml endpoint_url=http://127.0.0.1:9000
  pixsearch config conf/**/*.yaml --schema storage"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="config files, then optional dotted key=value overrides")
    p.add_argument("--schema", help="schema name (default: the file's directory under conf/)")


def run(args: argparse.Namespace) -> int:
    from pixsearch_core.config import SCHEMAS, load_config, schema_for

    files = [f for f in args.files if "=" not in f]
    overrides = [f for f in args.files if "=" in f]
    for f in files:
        name = args.schema or Path(f).parent.name
        if name not in SCHEMAS:
            raise ValueError(f"{f}: no schema for directory {name!r}; pass --schema, one of {sorted(SCHEMAS)}")
        cfg = load_config(schema_for(name), f, overrides)
        print(json.dumps({"file": f, "schema": name, "config": cfg.model_dump(mode="json")}, indent=2))
    return 0
