"""``bench``: parse, resolve, print. No science here.

Subcommands register themselves in :data:`bench.cli.common.COMMANDS` (name -> (help,
add_arguments, main)) when their module is imported below; every user error is a
:class:`~bench.core.errors.BenchError`, printed as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from bench.cli import experts, run, speed, status, tables, verify  # noqa: F401  (each registers its commands)
from bench.cli.common import COMMANDS
from bench.core.allocator import keep_freed_memory
from bench.core.errors import BenchError
from bench.run.store import code_version


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line naming the problem (argparse prints the whole usage block first)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="bench", description="DREAM-bench: dataset distillation harness")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name in COMMANDS.names():
        help_text, add_arguments, _ = COMMANDS.get(name)
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    code_version()  # pin the code version this process runs (see store.code_version)
    keep_freed_memory()  # no page faults for re-allocated activations (bench/core/allocator.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    _, _, run_command = COMMANDS.get(args.command)
    try:
        return run_command(args) or 0
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bench ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted: finished runs are in the store; rerun to complete the rest", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
