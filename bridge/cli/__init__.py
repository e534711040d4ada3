"""`bridge COMMAND` / `python -m bridge COMMAND`: parse (`parser`), run the command's function,
turn the errors an operator can fix into one line on stderr and an exit code.

The commands live by kind: `processes` (serve, worker, migrate, demo, sandbox), `portal_commands`
(sync, purge, replay, status), `setup_commands` (bind, unbind, check-config, reencrypt-tokens);
`loading` is what they share (the config loaded, the token cipher, `--portal KEY`).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

from bridge.cli.parser import build_parser
from bridge.clients import BitrixError
from bridge.config import ConfigError
from bridge.db import AnotherWorkerRuns
from bridge.logs import configure_logging

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the process ends when this returns (see `_exit_soon`)."""
    try:
        return _run(argv)
    finally:
        _exit_soon()


def _exit_soon() -> None:
    """Spare the interpreter's shutdown the garbage collections it runs while it tears the
    modules down: over the objects the imports made (about 130,000 for `bridge sync`) they took
    0.2-0.5 s of every command's exit, after its work was done. Frozen objects are left to the
    operating system; nothing of the bridge's needs the collector at exit (engines and clients
    are closed by the commands, logging is flushed by its own exit hook)."""
    gc.freeze()


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        code: int = args.run(args)
        return code
    except ConfigError as exc:
        print(f"bridge: config error: {exc}", file=sys.stderr)
        return 2
    except AnotherWorkerRuns as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 2
    except BitrixError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
