"""`resonance` command line: one verb per pipeline stage. Reads params, does I/O, calls stage functions.

Only the standard library is imported at module level, so `resonance --help` starts fast; each verb
imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

# Quiet and offline by default; state stays inside the project (setdefault: the caller's env wins).
_ENV_DEFAULTS = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def _catalog(args: argparse.Namespace) -> int:
    from resonance.catalog.stage import describe, run
    from resonance.config import CatalogParams, load_section

    params = load_section(args.params, "catalog", CatalogParams)
    header = run(params, Path(args.out), Path(args.cache), profile=args.profile, limit=args.limit,
                 progress=not args.quiet, exclude=Path(args.exclude) if args.exclude else None)
    print(describe(header, Path(args.out)))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from resonance.config import ValidateParams, load_section
    from resonance.validate.stage import describe, run

    params = load_section(args.params, "validate", ValidateParams)
    result = run(params, Path(args.catalog), Path(args.out), Path(args.metrics), progress=not args.quiet)
    print(describe(result))
    return 0 if result["success"] else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every verb."""
    parser = argparse.ArgumentParser(prog="resonance", description="Song recognition for live-concert audio.")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every skipped file and decision")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    p = sub.add_parser("catalog", help="build the reference catalog from Debian music packages")
    p.add_argument("--out", default="data/catalog", help="catalog folder (default: data/catalog)")
    p.add_argument("--cache", default="data/cache", help="download/extraction cache (default: data/cache)")
    p.add_argument("--profile", default=None, help="catalog profile from params (default: catalog.profile)")
    p.add_argument("--limit", type=int, default=None, help="stop after this many tracks (small catalogs)")
    p.add_argument("--exclude", default=None, help="a built catalog whose songs must not appear in this one")
    p.set_defaults(func=_catalog)

    p = sub.add_parser("validate", help="Great Expectations checks on the catalog manifest and audio")
    p.add_argument("--catalog", default="data/catalog", help="catalog folder (default: data/catalog)")
    p.add_argument("--out", default="data/validate", help="stats and report folder (default: data/validate)")
    p.add_argument("--metrics", default="metrics/validate.json", help="summary JSON tracked by DVC as metrics")
    p.set_defaults(func=_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `resonance` console script; returns the exit code."""
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    return _run(args.func, args)


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Known failures become one clear line on stderr and exit code 2, never a traceback."""
    from resonance.audio import AudioError
    from resonance.catalog.debs import CatalogError
    from resonance.catalog.manifest import ManifestError
    from resonance.config import ParamsError

    try:
        return func(args)
    except (ParamsError, CatalogError, ManifestError, AudioError) as exc:
        print(f"resonance {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"resonance {args.verb}: interrupted (outputs are written atomically; nothing half-written)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
