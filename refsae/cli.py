"""`refsae` command line (CHK-3).

    refsae check [--profile dev|ci|thorough] [--max-examples N] [--ops NAME,...] [--dtypes D,...]
                 [--device cpu|cuda]
    refsae conform TARGET [--profile dev|ci|thorough] [--max-examples N] [--ops NAME,...]
                   [--json PATH] [--markdown PATH] [--quiet]
    refsae rows [NAME ...]
    refsae clauses [ID ...] [--root DIR]

`check` checks refsae.torch against the oracle, one row per (operation, dtype); `conform` runs the
conformance suite on TARGET (a built-in adapter or module:factory, CONF-5). Both exit 0 when
nothing fails, 1 when something fails, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Sequence

from refsae import __version__
from refsae.checking import profiles, table
from refsae.checking.check import Outcome, check
from refsae.checking.implementations import TorchImplementation
from refsae.checking.tolerances import DTYPES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refsae", description="Reference SAE operations and their checks.")
    parser.add_argument("--version", action="version", version=f"refsae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    chk = sub.add_parser("check", help="check refsae.torch against the oracle, operation by operation")
    chk.add_argument(
        "--profile",
        choices=profiles.PROFILES,
        default=None,
        help="hypothesis profile (default: $REFSAE_PROFILE or dev)",
    )
    chk.add_argument("--max-examples", type=int, default=None, help="examples per operation and dtype")
    chk.add_argument("--ops", default=None, help="comma-separated operation names (default: all)")
    chk.add_argument("--dtypes", default=None, help=f"comma-separated dtypes (default: {','.join(DTYPES)})")
    chk.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    chk.add_argument(
        "--fast",
        action="store_true",
        help="check the rows' fast paths instead (PERF-1); rows without one are left out",
    )
    con = sub.add_parser("conform", help="the conformance suite: check a library's SAE clause by clause")
    con.add_argument("target", help="a built-in adapter (refsae, sae_lens, ...) or module:factory")
    con.add_argument("--profile", choices=profiles.PROFILES, default=None, help="dev | ci | thorough")
    con.add_argument("--max-examples", type=int, default=None, help="examples per operation and dtype")
    con.add_argument("--ops", default=None, help="comma-separated operation names (default: all)")
    con.add_argument("--json", default=None, metavar="PATH", help="write the JSON report here")
    con.add_argument("--markdown", default=None, metavar="PATH", help="write the Markdown report here")
    con.add_argument("--quiet", action="store_true", help="no progress lines")
    con.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 on any finding (convention, precision, precondition, tie too), not only bug and error",
    )
    con.add_argument(
        "--known",
        default=None,
        metavar="PATH",
        help="the library's known-findings file (findings.toml): mark bugs new or fixed (CONF-20)",
    )
    rows = sub.add_parser("rows", help="every row of the table as an adapter method receives it (CONF-1)")
    rows.add_argument("names", nargs="*", help="rows to show (default: all)")
    ck = sub.add_parser(
        "checkpoint",
        help="what a checkpoint's files compute; its libraries' loaders checked; convert",
        add_help=False,
    )
    ck.add_argument("rest", nargs=argparse.REMAINDER, help="see `refsae checkpoint --help` (CKPT-26)")
    cl = sub.add_parser("clauses", help="the clause index: every spec clause and the tests citing it")
    cl.add_argument("ids", nargs="*", help="clauses to print with their page and text (ENC-2 ...)")
    cl.add_argument("--root", default=".", help="project root holding specs/ and tests/ (default: .)")
    return parser


def run_clauses(args: argparse.Namespace) -> int:
    """The clause index of a checkout (specs/ and tests/ under --root: citations, exit 1 when one is
    missing), or, without one or for given IDs, the index shipped with the package (PKG-3)."""
    from pathlib import Path

    from refsae.checking import clauses

    unknown = [c for c in args.ids if c not in clauses.shipped()]
    if unknown:
        print(f"refsae clauses: unknown clause {', '.join(unknown)}", file=sys.stderr)
        return 2
    root = Path(args.root)
    if args.ids or not (root / "specs").is_dir():
        print(clauses.shipped_report(args.ids))
        if not args.ids:
            print(f"\n{len(clauses.shipped())} clauses (the installed package's index; no specs/ under "
                  f"{root.resolve()}, so no citations)")  # fmt: skip
        return 0
    index = clauses.build(root)
    print(clauses.report(index))
    return 0 if index.complete else 1


def run_rows(args: argparse.Namespace) -> int:
    """Print each row as an adapter's method: its arrays (positional, canonical layout), its options
    (keywords; convention options marked, CONF-3), its outputs and clauses."""
    for name in args.names:
        if name not in table.BY_NAME:
            raise SystemExit(f"refsae rows: no operation {name!r}; known: {', '.join(table.BY_NAME)}")
    for op in table.TABLE:
        if args.names and op.name not in args.names:
            continue
        signature = inspect.signature(op.oracle)
        conventions = op.convention_options()
        options = [
            f"{p.name}=…" + (" [convention]" if p.name in conventions else "")
            for p in signature.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        print(f"{op.name}({', '.join(op.arrays)}{', *, ' if options else ''}{', '.join(options)})")
        print(f"    -> {', '.join(op.outputs)}    {op.summary}")
        print(f"    clauses {', '.join(op.clauses)}; dtypes {', '.join(op.dtypes)}")
    return 0


def run_conform(args: argparse.Namespace) -> int:
    from pathlib import Path

    from refsae.conform import TargetError, conform, load

    if args.max_examples is not None and args.max_examples < 1:
        raise SystemExit("refsae conform: --max-examples must be >= 1")
    try:
        adapter = load(args.target)
    except TargetError as exc:
        raise SystemExit(f"refsae conform: {exc}") from None
    names = None if args.ops is None else [n.strip() for n in args.ops.split(",") if n.strip()]
    for n in names or ():
        if n not in table.BY_NAME:
            raise SystemExit(f"refsae conform: no operation {n!r}; known: {', '.join(table.BY_NAME)}")
    start = time.perf_counter()

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {line}", file=sys.stderr, flush=True)

    report = conform(
        adapter, profile=args.profile, max_examples=args.max_examples, operations=names, progress=progress
    )
    if args.known:
        from refsae.conform import known

        path = Path(args.known)
        if not path.is_file():
            raise SystemExit(f"refsae conform: --known: no file {path}")
        known.annotate(report, known.load(path))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(report.to_json() + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(report.to_markdown())
    from refsae.conform.markdown import finding_heading
    from refsae.conform.report import counts

    for f in report.findings:
        if f.verdict not in ("pass", "unsupported"):
            first = f.message.splitlines()[0] if f.message else f.detail
            mark = f" [{f.known}]" if f.known else ""
            label = finding_heading(f)
            label = label[: len(f.verdict)].upper() + label[len(f.verdict) :]
            print(f"{label}{mark} {f.operation} ({', '.join(f.clauses)}): {first}")
    for op in report.fixed:
        print(f"FIXED {op}: a known bug that no longer reproduces")
    print(f"{report.target}: {counts(report.verdicts)} ({report.seconds:.1f} s)")
    return 0 if report.passes(strict=args.strict) else 1


def _row(o: Outcome, seconds: float) -> str:
    ratio = f"{o.worst_ratio:.3g}" if o.status == "pass" else "-"
    return f"| {o.operation} | {o.dtype} | {o.examples} | {ratio} | {o.status.upper()} | {seconds:.1f} |"


def run_check(args: argparse.Namespace) -> int:
    profile = profiles.load(args.profile)
    names = table.BY_NAME if args.ops is None else [n.strip() for n in args.ops.split(",") if n.strip()]
    dtypes = DTYPES if args.dtypes is None else tuple(d.strip() for d in args.dtypes.split(",") if d.strip())
    for d in dtypes:
        if d not in DTYPES:
            raise SystemExit(f"refsae check: unknown dtype {d!r}; expected one of {', '.join(DTYPES)}")
    try:
        selected = [table.get(n) for n in names]
    except KeyError as exc:
        raise SystemExit(f"refsae check: {exc.args[0]}") from None
    if args.max_examples is not None and args.max_examples < 1:
        raise SystemExit("refsae check: --max-examples must be >= 1")
    if args.device != "cpu":
        import torch

        try:
            kind = torch.device(args.device).type
        except RuntimeError:
            kind = "unknown"
        if kind != "cuda" or not torch.cuda.is_available():
            raise SystemExit(
                f"refsae check: device {args.device!r} is not available (cpu, or cuda with a GPU)"
            )
    impl = TorchImplementation(args.device, fast=args.fast)
    if args.fast:
        selected = [op for op in selected if op.fast is not None]
        if not selected:
            raise SystemExit("refsae check: none of the selected operations has a fast path")
    print(f"refsae {__version__}: {impl.name} against refsae.oracle, profile {profile}", flush=True)
    print("worst ratio = max over examples and elements of |torch − oracle| / allowed error (pass <= 1)\n")
    print("| operation | dtype | examples | worst ratio | result | seconds |")
    print("|---|---|---|---|---|---|", flush=True)
    failures: list[Outcome] = []
    for op in selected:
        for dtype in dtypes:
            if dtype not in op.dtypes:
                continue
            start = time.perf_counter()
            outcome = check(op, impl, dtype, max_examples=args.max_examples)
            print(_row(outcome, time.perf_counter() - start), flush=True)
            if outcome.status in ("fail", "error"):
                failures.append(outcome)
    for o in failures:
        print(f"\n## {o.operation} [{o.dtype}] failed\n{o.failure}")
    print(f"\n{'all operations pass' if not failures else f'{len(failures)} failing row(s)'}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else 2
    try:
        if args.command == "checkpoint":
            from refsae.checkpoints.cli import main as checkpoint_main

            return checkpoint_main(args.rest)
        commands = {"clauses": run_clauses, "check": run_check, "conform": run_conform, "rows": run_rows}
        return commands[args.command](args)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
