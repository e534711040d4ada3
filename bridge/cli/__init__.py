"""`bridge COMMAND` / `python -m bridge COMMAND`: parse (`parser`), run the command's function,
turn the errors an operator can fix into one line on stderr and an exit code.

The commands live by kind: `processes` (serve, worker, migrate, demo, sandbox), `portal_commands`
(sync, purge, replay, status), `setup_commands` (bind, unbind, check-config, reencrypt-tokens);
`loading` is what they share (the config loaded, the token cipher, `--portal KEY`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bridge.cli.parser import build_parser
from bridge.clients import BitrixError
from bridge.config import ConfigError
from bridge.db import AnotherWorkerRuns
from bridge.logs import configure_logging

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
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
