"""The `pixsearch` command: one entry point, one subcommand per job.

Each subcommand lives in a thin module beside this one that defines `NAME`, `HELP`, `add_arguments(parser)` and
`run(args) -> int`; `COMMANDS` lists them in the order `--help` shows them. Job modules import their engines
(Spark, Ray, DeepSpeed) inside `run`, so `pixsearch --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback

from pixsearch_core import __version__

#: subcommand modules, in help order
COMMANDS: list[str] = [
    "jobs.demo",
    "jobs.index",
    "jobs.search",
    "jobs.eval",
    "jobs.data",
    "jobs.train",
    "jobs.lineage",
    "jobs.config",
    "jobs.store",
]

log = logging.getLogger("pixsearch")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "py4j", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixsearch",
        description="PixSearch at cluster scale: build sharded indices (Spark), serve search and run benchmark "
        "evaluations (Ray), train (DeepSpeed). Every job reads a YAML config from conf/ and accepts "
        "dotted key=value overrides.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pixsearch {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: INFO)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_const",
        const="DEBUG",
        dest="log_level",
        help="the same as --log-level DEBUG (errors come with their traceback)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for modname in COMMANDS:
        mod = importlib.import_module(modname)
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(_run=mod.run)  # before add_arguments, which may set its own (jobs/eval)
        mod.add_arguments(p)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """`parser.parse_args`, except that dotted key=value overrides may also follow an option
    (`pixsearch demo output=/tmp/d --steps eval world.seed=1`): argparse ends a subcommand's `overrides` positional
    at the first option and would reject what comes after it. Anything else left over is still an error."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        bad = [x for x in extra if x.startswith("-") or "=" not in x]
        if bad or not isinstance(getattr(args, "overrides", None), list):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    setup_logging(args.log_level)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as e:  # one clear line for expected user errors; the traceback at DEBUG
        if _user_error(e):
            log.debug("details", exc_info=True)
            log.error("%s", e)
            return 2
        raise


def _user_error(e: Exception) -> bool:
    """Errors a user fixes (config, paths, storage: missing bucket, denied, unreachable endpoint) rather than bugs."""
    from pixsearch_core.config import ConfigError
    from pixsearch_core.storage import StorageError

    if isinstance(e, (ConfigError, FileNotFoundError, ValueError, KeyError, StorageError)):
        return True
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return False
    return isinstance(e, (BotoCoreError, ClientError))


def console() -> None:
    """The `pixsearch` console script: `main`, then leave without running C++ static destructors.

    After a job, native libraries' background threads (pyarrow, torch, Ray) are sometimes still being torn down
    when the interpreter finalises, and the process then aborts ("terminate called without an active exception",
    exit 134) AFTER the work and its output are complete, turning a finished job into a failed task (seen in
    about 1 of 4 `eval run`s here). Every job closes what it opened (Ray shutdown, process groups, writers)
    before returning, so we flush and exit directly."""
    try:
        code = main()
    except SystemExit as e:  # argparse --help / usage errors
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException:  # an unexpected error: its traceback, then exit 1
        traceback.print_exc()
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
