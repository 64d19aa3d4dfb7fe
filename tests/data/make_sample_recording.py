"""Re-make tests/data/recording: a few seconds recorded from the simulator (seed 1).

    python tests/data/make_sample_recording.py
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import invia_data
import invia_data.sim

OUT = Path(__file__).with_name("recording")


def main(seconds: float = 4.0) -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    with invia_data.sim.run(port=0, seed=1) as sim, \
            invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        s = inv.stream
        trades = s.all_trades("SBER", recent=20)
        frames = [s.orderbook("SBER", depth=10), trades,
                  s.bars("SBER", "1min", start=time.time() - 1800), s.quotes(["SBER", "GAZP"])]
        with s.record(OUT, frames, batch_seconds=1.0) as recorder:
            time.sleep(seconds)
        print(recorder.status_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
