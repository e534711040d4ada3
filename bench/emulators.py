"""Both emulators in a process of their own, so their CPU is not charged to the load generator.

`python -m bench.emulators --creation-limit N --google-rate N` prints one JSON line with the two
URLs once both listen, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from bridge.sandbox.bitrix import BitrixEmulator
from bridge.sandbox.google import GoogleEmulator
from bridge.sandbox.server import ServerThread


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulators")
    parser.add_argument("--creation-limit", type=int, default=60)
    parser.add_argument("--google-rate", type=int, default=600, help="requests per user a minute")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    google = GoogleEmulator(
        creation_limit=args.creation_limit, user_rate_per_minute=args.google_rate
    )
    with ServerThread(BitrixEmulator().app) as bitrix, ServerThread(google.app) as calendar:
        print(json.dumps({"bitrix": bitrix.url, "google": calendar.url}), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
