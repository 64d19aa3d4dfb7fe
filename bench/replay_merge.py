"""Replayed keyed frames: the cost of ``.df`` of a replayed quotes frame, which merges every
recorded row field by field per key as the live frame merges its messages (a null sent blanks,
a field left out keeps its value), against the live reducer's ``.df`` of the same state and
the plain ``groupby().last()`` (which cannot tell a null sent from a field left out).

A replay moving forward extends the previous merge by the new rows only: ``.df`` after 100 more
rows is timed too. Also the recorder's extra work for that: ``absent_fields`` per message, against the rest of
``record_table``.

    python bench/replay_merge.py [--rows 200000] [--keys 50]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from invia_data.record import SCHEMAS, absent_fields, record_table
from invia_data.replay import RowsReplay
from invia_data.stream.state import make_state

# the official spec's example quote message (Simple format), as tests/fixtures/spec holds it
SPEC_EXAMPLES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "spec"
QUOTE = next(example["value"]["data"]
             for operation in json.loads((SPEC_EXAMPLES / "ws_examples.json").read_text("utf-8"))
             if operation["opcode"] == "QuotesSubscribe"
             for example in operation["examples"] if example["format"] == "Simple")


def best(fn: Callable[[], Any], repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    items = [{**QUOTE, "symbol": f"S{i % args.keys}", "bid": float(rng.random())}
             for i in range(args.rows)]
    partial = [{k: v for k, v in q.items() if k not in ("ask", "bid_vol")} if i % 2 else q
               for i, q in enumerate(items)]
    times = [1.7e9 + i * 1e-3 for i in range(args.rows)]
    for label, messages in (("full messages", items), ("every other leaves 2 fields out", partial)):
        rows = record_table("quotes", messages, times, "Simple")
        replayed = RowsReplay(rows, "quotes", {})
        live = make_state("quotes", "Simple")
        for data in messages:
            live.apply(data)
        table = replayed.table

        def grouped(table: Any = table) -> Any:
            merged = table.groupby(["symbol", "exchange"], sort=False, dropna=False).last()
            return merged.reset_index()[list(table.columns)].astype(table.dtypes.to_dict())

        def whole(replayed: Any = replayed) -> Any:
            replayed._cache = None   # merged from the first row
            return replayed.frame(args.rows)

        def step(replayed: Any = replayed) -> Any:   # the clock moved on by 100 rows
            replayed._cache = None
            replayed.frame(args.rows - 100)
            start = time.perf_counter()
            replayed.frame(args.rows)
            return time.perf_counter() - start

        t_replay = best(whole)
        t_step = min(step() for _ in range(5))
        t_live = best(lambda live=live: live.frame(live.snapshot()))
        t_grouped = best(grouped)
        print(f"{label}: .df of {args.rows:,} rows, {args.keys} keys: replay "
              f"{t_replay * 1e3:.1f} ms, groupby().last() {t_grouped * 1e3:.1f} ms "
              f"({t_grouped / t_replay:.2f}x), live .df {t_live * 1e3:.2f} ms; "
              f"after 100 more rows {t_step * 1e3:.2f} ms")
        t_absent = best(lambda messages=messages: absent_fields(SCHEMAS["quotes"], messages,
                                                                "Simple"), 3)
        t_table = best(lambda messages=messages: record_table("quotes", messages, times,
                                                              "Simple"), 3)
        print(f"  recorder: absent_fields {t_absent / args.rows * 1e6:.2f} us/message of "
              f"record_table's {t_table / args.rows * 1e6:.2f} "
              f"({t_absent / t_table:.0%})")


if __name__ == "__main__":
    main()
