"""The ``invia-data`` command line. Each subcommand is a pair of functions registered in
``COMMANDS``: one adds its arguments to an argparse sub-parser, one runs it and returns the exit
status. This is the one module allowed to print (the simulator's connection line)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]
            ) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register ``invia-data NAME``."""
    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(help, add_arguments, run)
        return run
    return register


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("invia_data")
    root.addHandler(handler)
    root.setLevel(level.upper())


# --- invia-data sim ----------------------------------------------------------------------------

def _sim_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8088, help="port (default 8088; 0 = any free port)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic market (default 1)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="market clock rate relative to real time (default 1.0)")
    parser.add_argument("--tls", action="store_true",
                        help="serve https/wss with a self-signed certificate made at start")
    parser.add_argument("--firehose", action="store_true",
                        help="order-book subscriptions send as fast as the socket takes them")
    parser.add_argument("--guid-reuse", choices=("replace", "reject"), default="replace",
                        help="a subscribe whose guid is already active on the connection: replace "
                             "the old subscription (default) or reject it with 400")
    parser.add_argument("--log-level", default="INFO", help="logging level on stderr (default INFO)")


@command("sim", "run the simulator of the Invia API until Ctrl-C", _sim_arguments)
def run_sim(args: argparse.Namespace) -> int:
    from . import sim
    from .errors import InviaError

    _configure_logging(args.log_level)
    try:
        server = sim.start(host=args.host, port=args.port, seed=args.seed, speed=args.speed,
                          tls=args.tls, firehose=args.firehose, guid_reuse=args.guid_reuse)
    except InviaError as exc:
        print(f"invia-data sim: {exc}", file=sys.stderr)
        return 1
    info = {"url": server.url, "ws_url": server.ws_url, "auth_url": server.auth_url,
            "refresh_token": server.refresh_token}
    if server.cert_path:
        info["cert_path"] = server.cert_path
    print(orjson.dumps(info).decode(), flush=True)
    # a shell starts background jobs with SIGINT ignored, and Python keeps it so: restore it,
    # so that Ctrl-C or kill -INT stops the simulator however it was started
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


# --- invia-data demo ---------------------------------------------------------------------------

def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo-output",
                        help="folder for the report, executed notebooks and PNGs (default demo-output)")
    parser.add_argument("--pictures", default=None,
                        help="also copy the charts into this folder (docs/pictures for the README)")
    parser.add_argument("--log-level", default="WARNING", help="logging level on stderr")


@command("demo", "run the quickstart and order-book notebooks against the simulator; "
         "write an HTML report with the plots", _demo_arguments)
def run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo as demo

    _configure_logging(args.log_level)
    print("invia-data demo: starting the embedded simulator and running the notebooks...",
          flush=True)
    result = demo(args.out, pictures=args.pictures)
    print(result.summary(), flush=True)
    return 0


# --- entry point -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="invia-data",
                                     description="Invia Broker data toolkit and its simulator")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, cmd in COMMANDS.items():
        cmd.add_arguments(sub.add_parser(name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
