"""`refsae checkpoint` (CKPT-26..CKPT-29).

    refsae checkpoint PATH [--format F] [--inputs FILE.npy | N] [--seed S] [--json OUT]
                           [--architecture A] [--kind K] [--k K] [--encode E] [--decoder D]
    refsae checkpoint convert SRC --to FORMAT DST [--overwrite] [--format F] [stated options]

The first prints what the files define (every item with the file and key it came from), runs the
oracle's forward pass on the inputs, and checks every installed library's loader of the format
against it (exit 1 on a `bug` or `error`). `convert` writes the same function in another format,
reads DST back and compares the two forward passes (exit 1 if they differ); bad input exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from refsae.checkpoints import formats
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.options import Options
from refsae.checkpoints.report import convert, inspect


def _stated(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", default=None, help="the source format (default: detected from the files)")
    parser.add_argument("--architecture", default=None, help="relu | topk | batchtopk | jumprelu | gated")
    parser.add_argument("--kind", default=None, help="sae | transcoder | skip_transcoder")
    parser.add_argument("--k", type=int, default=None, help="TopK / BatchTopK k")
    parser.add_argument("--encode", default=None, help="tied | untied (ENC-2, ENC-3)")
    parser.add_argument("--decoder", default=None, help="constrained | normalised (DEC-2, DEC-3)")
    parser.add_argument("--input-scale", type=float, default=None, help="the input scale c (CKPT-3)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refsae checkpoint", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a checkpoint directory or one of its files")
    _stated(parser)
    parser.add_argument(
        "--inputs", default="64", help="a .npy file of activations (batch, d_in) or a row count"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random rows (default 0)")
    parser.add_argument("--no-libraries", action="store_true", help="do not run the libraries' loaders")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the report as JSON here")
    return parser


def _convert_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refsae checkpoint convert", description="write SRC in another format"
    )
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--to", required=True, help="the target format: " + ", ".join(_writable()))
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.add_argument("--inputs", default="64", help="rows the proof compares on (.npy or a count)")
    parser.add_argument("--seed", type=int, default=0)
    _stated(parser)
    return parser


def _writable() -> list[str]:
    return [name for name, fmt in formats.formats().items() if fmt.write is not None]


def _options(args: argparse.Namespace) -> Options:
    return Options(args.architecture, args.kind, args.k, args.encode, args.decoder, args.input_scale)


def _inputs(spec: str) -> int | np.ndarray:
    if spec.isdigit():
        return int(spec)
    path = Path(spec)
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as e:
        raise CheckpointError(path, "", f"not a readable .npy array ({e})") from None


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    try:
        if argv[:1] == ["convert"]:
            args = _convert_parser().parse_args(argv[1:])
            report = convert(
                Path(args.src), Path(args.dst), args.to, _options(args), args.format,
                inputs=_inputs(args.inputs), seed=args.seed, overwrite=args.overwrite,
            )  # fmt: skip
        else:
            args = _parser().parse_args(argv)
            report = inspect(
                Path(args.path), _options(args), args.format,
                inputs=_inputs(args.inputs), seed=args.seed, libraries=not args.no_libraries,
            )  # fmt: skip
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else 2
    except CheckpointError as e:
        print(f"refsae checkpoint: {e}", file=sys.stderr)
        return 2
    print(report.text())
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(report.data(), indent=2) + "\n", encoding="utf-8")
    return report.status
