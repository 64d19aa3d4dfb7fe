"""The ``invia-data`` command line. Each subcommand is a pair of functions registered in
``COMMANDS``: one adds its arguments to an argparse sub-parser, one runs it and returns the exit
status. This is the one module allowed to print (the simulator's connection line)."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only, requests whose "
                             "Host or Origin names another machine are refused; a public "
                             "address such as 0.0.0.0 serves everyone)")
    parser.add_argument("--port", type=int, default=8088, help="port (default 8088; 0 = any free port)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic market (default 1)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="market clock rate relative to real time (default 1.0)")
    parser.add_argument("--start", default=None,
                        help="market time to start at, e.g. '2025-03-14 09:55' (Moscow time) or "
                             "'now'; default: now, or the same time of day in the last main "
                             "session when the exchange is closed now")
    parser.add_argument("--tls", action="store_true",
                        help="serve https/wss with a self-signed certificate made at start")
    parser.add_argument("--firehose", action="store_true",
                        help="order-book subscriptions send as fast as the socket takes them")
    parser.add_argument("--guid-reuse", choices=("replace", "reject"), default="replace",
                        help="a subscribe whose guid is already active on the connection: replace "
                             "the old subscription (default) or reject it with 400")
    parser.add_argument("--replay", default=None, metavar="FOLDER",
                        help="serve a recording (invia-data record --out FOLDER): its instruments' "
                             "books, trades, quotes (recorded fields only, the others null) and "
                             "candles; other instruments answer "
                             "404. The clock stands at the recording's first message until a "
                             "client first asks for market data (a /cws subscription to an "
                             "instrument, an HTTP book/trades/quotes/candles call; not a "
                             "listing), then runs at --speed: one session that every client "
                             "shares, a later client joins it where it is")
    parser.add_argument("--log-level", default="INFO", help="logging level on stderr (default INFO)")


@command("sim", "run the simulator of the Invia API until Ctrl-C", _sim_arguments)
def run_sim(args: argparse.Namespace) -> int:
    from . import sim
    from .errors import InviaError

    _configure_logging(args.log_level)
    try:
        server = sim.start(host=args.host, port=args.port, seed=args.seed, speed=args.speed,
                          tls=args.tls, firehose=args.firehose, guid_reuse=args.guid_reuse,
                          replay=args.replay, start=args.start)
    except InviaError as exc:
        print(f"invia-data sim: {exc}", file=sys.stderr)
        return 1
    info = {"url": server.url, "ws_url": server.ws_url, "auth_url": server.auth_url,
            "refresh_token": server.refresh_token, "market_time": server.market_time}
    if server.cert_path:
        info["cert_path"] = server.cert_path
    print(orjson.dumps(info).decode(), flush=True)
    try:
        with stopped_by_signals() as stop:
            while not stop.wait(0.5):
                pass
    finally:
        server.stop()
    return 0


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C, kill -INT or kill -TERM while the block runs; the handlers are
    put back after it (a command run in-process, from a test, leaves SIGINT as it found it).
    A shell starts background jobs with SIGINT ignored: setting it here stops them too."""
    stop = threading.Event()

    def finish(signum: int, frame: object) -> None:
        stop.set()

    previous = {signum: signal.signal(signum, finish)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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


# --- invia-data notebooks ----------------------------------------------------------------------

def _notebooks_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="where to put the notebooks (made if missing)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace notebooks already in the folder (default: keep them)")


@command("notebooks", "copy the example notebooks into a folder, to open in Jupyter",
         _notebooks_arguments)
def copy_notebooks(args: argparse.Namespace) -> int:
    from .demo import copy_notebooks as copy

    written = copy(args.folder, overwrite=args.overwrite)
    for path in written:
        print(path)
    kept = "" if written else " (all were there already: --overwrite replaces them)"
    print(f"{len(written)} notebooks in {Path(args.folder).expanduser()}{kept}; "
          f"open them with: jupyter lab {args.folder}", flush=True)
    return 0


# --- invia-data record -------------------------------------------------------------------------

PORTFOLIO_OPTIONS = ("positions", "summary", "risk", "forts_risk", "orders", "stop_orders",
                     "own_trades")


def _record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder of the Parquet dataset (appended to)")
    parser.add_argument("--orderbook", default="", metavar="SYMBOLS",
                        help="order books to record, e.g. SBER,GAZP")
    parser.add_argument("--depth", type=int, default=20, help="order-book levels (default 20)")
    parser.add_argument("--all-trades", default="", metavar="SYMBOLS",
                        help="instruments whose every trade is recorded")
    from .stream.stream import RECORDED_RECENT

    parser.add_argument("--recent", type=int, default=RECORDED_RECENT,
                        help="trades resent on (re)subscription, deduplicated by id, so a restart "
                             f"or a reconnect misses none of them (default {RECORDED_RECENT}, "
                             "as inv.stream.all_trades(record=) in Python)")
    parser.add_argument("--quotes", default="", metavar="SYMBOLS", help="quotes, e.g. SBER,ITS:SOGN")
    parser.add_argument("--bars", default="", metavar="SYMBOL:TF",
                        help="candles, e.g. SBER:1min,GAZP:5min")
    parser.add_argument("--instrument-state", default="", metavar="SYMBOLS",
                        help="trading status and limits")
    for kind in PORTFOLIO_OPTIONS:
        parser.add_argument(f"--{kind.replace('_', '-')}", nargs="?", const="*", default=None,
                            metavar="PORTFOLIOS",
                            help=f"{kind.replace('_', ' ')} of these portfolios (none given: "
                                 "the default portfolio)")
    parser.add_argument("--env", default=None,
                        help="prod, dev, sim or a URL (default $INVIA_ENV, else the embedded "
                             "simulator when no credentials are set)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: until Ctrl-C or SIGTERM)")
    parser.add_argument("--batch-rows", type=int, default=500_000,
                        help="rows per written batch; a book counts 2 x depth "
                             "(default 500000)")
    parser.add_argument("--batch-seconds", type=float, default=5.0,
                        help="the longest a message waits before it is written (default 5)")
    parser.add_argument("--no-compact", dest="compact", action="store_false",
                        help="leave the files of finished days as written (default: merged "
                             "at the start and after each UTC midnight, as invia-data compact)")
    parser.add_argument("--status-every", type=float, default=1.0,
                        help="seconds between status lines on stderr (default 1; 0: none)")
    parser.add_argument("--log-level", default="WARNING", help="logging level on stderr")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def open_recorded_frames(stream: Any, args: argparse.Namespace) -> list[Any]:
    """Subscribe to everything the ``record`` options name."""
    from .errors import InvalidArgument

    frames = [stream.orderbook(symbol, depth=args.depth) for symbol in _split(args.orderbook)]
    for symbol in _split(args.all_trades):
        frames.append(stream.all_trades(symbol, recent=args.recent, maxlen=10_000))
    if _split(args.quotes):
        frames.append(stream.quotes(_split(args.quotes)))
    for item in _split(args.bars):
        symbol, _, tf = item.rpartition(":") if item.count(":") else (item, "", "1min")
        if not symbol:
            raise InvalidArgument(f"--bars takes SYMBOL:TF, e.g. SBER:1min; got {item!r}")
        frames.append(stream.bars(symbol, tf))
    frames += [stream.instrument_state(symbol) for symbol in _split(args.instrument_state)]
    for kind in PORTFOLIO_OPTIONS:
        given = getattr(args, kind)
        if given is None:
            continue
        portfolios = [None] if given == "*" else _split(given)
        frames += [getattr(stream, kind)(portfolio) for portfolio in portfolios]
    if not frames:
        raise InvalidArgument("nothing to record: name at least one of --orderbook, "
                              "--all-trades, --quotes, --bars, --instrument-state, --positions ...")
    return frames


EMBEDDED_RESTART = (
    "invia-data record: appending to a recording of the embedded simulator, which is a new "
    "synthetic market at each start: the recording holds the earlier market up to the gap and "
    "this one after it (prices and books can jump there; trade ids keep growing). To stop and "
    "restart into one market, run `invia-data sim` and record it with --env URL (and its "
    "refresh_token in INVIA_REFRESH_TOKEN).")


@command("record", "record live subscriptions into a Parquet dataset until Ctrl-C",
         _record_arguments)
def run_record(args: argparse.Namespace) -> int:


    _configure_logging(args.log_level)
    with stopped_by_signals() as stop:
        return _record_until(args, stop)


def _record_until(args: argparse.Namespace, stop: threading.Event) -> int:
    import time

    from . import connect
    from .errors import InviaError
    from .record import holds_recording

    appending = holds_recording(Path(args.out).expanduser())
    try:
        inv = connect(env=args.env)
    except InviaError as exc:
        print(f"invia-data record: {exc}", file=sys.stderr)
        return 1
    try:
        frames = open_recorded_frames(inv.stream, args)
        recorder = inv.stream.record(args.out, frames, batch_rows=args.batch_rows,
                                     batch_seconds=args.batch_seconds, compact=args.compact)
    except InviaError as exc:
        print(f"invia-data record: {exc}", file=sys.stderr)
        inv.close()
        return 1
    if appending and inv.embedded:
        print(EMBEDDED_RESTART, file=sys.stderr, flush=True)
    ends = None if args.duration is None else time.monotonic() + args.duration
    every = args.status_every if args.status_every > 0 else 3600.0
    tty = sys.stderr.isatty()
    try:
        while not stop.is_set():
            left = every if ends is None else min(every, ends - time.monotonic())
            if left <= 0 or stop.wait(left):
                break
            if args.status_every > 0:
                print(recorder.status_line(), end="\r" if tty else "\n", file=sys.stderr,
                      flush=True)
    finally:
        recorder.close()
        inv.close()
    print(recorder.status_line(), file=sys.stderr, flush=True)
    return 0


# --- invia-data compact -------------------------------------------------------------------------

def _compact_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="folder of a recording (invia-data record --out)")
    parser.add_argument("--today", action="store_true",
                        help="also the current UTC day (safe while a recorder writes it)")


@command("compact", "merge a recording's small files into a few large ones per day "
                    "(the rows stay the same)", _compact_arguments)
def run_compact(args: argparse.Namespace) -> int:
    from .compact import compact_recording
    from .errors import InviaError

    try:
        summary = compact_recording(args.path, today=args.today)
    except InviaError as exc:
        print(f"invia-data compact: {exc}", file=sys.stderr)
        return 1
    left = summary.attrs.get("left_today", 0)
    print(f"{int(summary['files'].sum())} files of {len(summary)} day partitions merged into "
          f"{int(summary['merged_into'].sum())} ({int(summary['rows'].sum())} rows)"
          + (f"; {left} partitions of today left as they are (--today merges them too)"
             if left else ""), flush=True)
    return 0


# --- invia-data download ------------------------------------------------------------------------

def _download_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="folder of the Parquet dataset (made if missing; a second "
                                     "run fetches only what is missing)")
    parser.add_argument("--exchange", default="MOEX", help="exchange to list (default MOEX)")
    parser.add_argument("--market", action="append", dest="markets", metavar="MARKET",
                        help="keep instruments of this market (FOND, FORTS, CURR, SPBX); repeatable")
    parser.add_argument("--board", action="append", dest="boards", metavar="BOARD",
                        help="keep instruments on this board (e.g. TQBR); repeatable")
    parser.add_argument("--type", action="append", dest="types", metavar="TYPE",
                        help="keep instruments of this type (e.g. CS); repeatable")
    parser.add_argument("--tf", default="1min", help="timeframe (default 1min)")
    parser.add_argument("--start", required=True, help="first day, e.g. 2024-01-01 (UTC)")
    parser.add_argument("--end", default=None, help="end, exclusive (default: now)")
    parser.add_argument("--env", default=None,
                        help="prod, dev, sim or a URL (default $INVIA_ENV, else as connect())")
    parser.add_argument("--workers", type=int, default=4, help="parallel requests (default 4)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--log-level", default="WARNING", help="logging level on stderr")


@command("download", "download the candles of every instrument of an exchange (filtered by "
         "market, board, type) into one Parquet dataset", _download_arguments)
def run_download(args: argparse.Namespace) -> int:
    import invia_data

    from .errors import InviaError

    _configure_logging(args.log_level)
    try:
        with invia_data.connect(env=args.env) as inv:
            summary = inv.download_universe(
                args.path, args.exchange, markets=args.markets, boards=args.boards,
                types=args.types, tf=args.tf, start=args.start, end=args.end,
                progress=False if args.no_progress else None, max_workers=args.workers)
    except InviaError as exc:
        print(f"invia-data download: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"invia-data download: interrupted; every file in {args.path} is complete, and "
              "the same command fetches only what is missing", file=sys.stderr, flush=True)
        return 130
    print(summary.to_string(index=False), flush=True)
    failed = int((summary["status"] == "failed").sum())
    print(f"{summary.attrs['candles']} candles written to {summary.attrs['path']} in "
          f"{summary.attrs['seconds']:.1f} s; {len(summary) - failed} instruments ok, "
          f"{failed} failed", flush=True)
    return 1 if failed else 0


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
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unknown(parser, args.command, unknown)
    with _logging_restored():
        return COMMANDS[args.command].run(args)


def _refuse_unknown(parser: argparse.ArgumentParser, command: str, unknown: list[str]) -> None:
    """argparse's error for arguments the command does not take, naming the options probably
    meant (``--trades``: ``--all-trades`` or ``--own-trades``)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command_parser = sub.choices[command]
    options = [o for a in command_parser._actions for o in a.option_strings if o.startswith("--")]
    meant = [m for word in unknown if word.startswith("--")
             for m in difflib.get_close_matches(word.split("=", 1)[0], options, n=2, cutoff=0.6)]
    hint = f" (did you mean {' or '.join(dict.fromkeys(meant))}?)" if meant else ""
    command_parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


@contextlib.contextmanager
def _logging_restored() -> Iterator[None]:
    """The library logger as it was once a command ends (``main`` called in a process that
    goes on: a test, a notebook; a handler left on a closed stderr fails every later log)."""
    logger = logging.getLogger("invia_data")
    handlers, level = list(logger.handlers), logger.level
    try:
        yield
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
