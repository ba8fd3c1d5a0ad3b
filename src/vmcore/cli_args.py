"""What the stand-alone tool commands (``vmcore asm``, ``vmcore disasm``)
share on the command line: one-line usage errors with exit status 2 (no
usage dump), --help's status, and how a failed write is reported."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence, Union


class UsageError(Exception):
    """A bad command line (the message is one line)."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UsageError(message)


def parse(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> Union[argparse.Namespace, int]:
    """The parsed arguments, or the exit status to return: 2 after a usage
    error (reported on stderr), --help's (0)."""
    try:
        return parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as e:
        print(f"vmcore: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)


def cannot_write(path: str, error: OSError) -> int:
    """Report a failed write of ``path``; the exit status (2)."""
    print(f"vmcore: error: cannot write {path}: {error.strerror or error}", file=sys.stderr)
    return 2
