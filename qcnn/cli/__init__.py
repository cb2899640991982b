"""The ``qcnn`` command. Each subcommand is a module of this package with
``add_parser(subparsers)`` and ``run(args) -> int``.

Every :class:`~qcnn.QcnnError` (and a few OS-level failures) becomes one line on stderr
and exit status 1; argparse usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._errors import QcnnError
from .._version import __version__
from . import _backends, _bench, _classify, _convert, _import, _info, _quantize, _run

__all__ = ["main", "COMMANDS"]

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = {"convert": _convert, "info": _info, "run": _run, "classify": _classify, "backends": _backends,
            "bench": _bench, "quantize": _quantize, "import": _import}


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(prog="qcnn", description="Quantized-CNN inference, conversion and benchmarks.")
    parser.add_argument("--version", action="version", version=f"qcnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        command = module.add_parser(sub)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except QcnnError as err:
        print(f"qcnn {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"qcnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
