"""`invia-data demo`, the README's first command, end to end against the embedded simulator."""

import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_writes_report_with_plots_and_prints_real_tables(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "invia_data.cli", "demo", "--out", str(out),
         "--pictures", str(tmp_path / "pictures")],
        capture_output=True, text=True, timeout=400, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]  # the kernels start quietly
    printed = done.stdout
    for title in ("== quotes ==", "== order book ITS:SOGN", "== positions ==", "Report:"):
        assert title in printed
    assert "SOGN" in printed and "bid" in printed and "ask" in printed
    report = (out / "report.html").read_text(encoding="utf-8")
    for picture in ("candles.png", "depth.png", "spread.png", "trade_tape.png",
                    "volume_profile.png", "pnl.png"):
        assert (out / picture).stat().st_size > 5_000
        assert f'src="{picture}"' in report
    copied = {p.name for p in (tmp_path / "pictures").glob("*.png")}
    assert {"candles.png", "candles_with_volume.png", "depth.png", "pnl.png"} <= copied
    assert (out / "01-quickstart.ipynb").exists() and (out / "02-order-book-live.ipynb").exists()
    assert list(out.glob("01-quickstart-*.png")), "the executed quickstart shows its plots"
    assert "Traceback" not in report
    jwt = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")  # base64 pictures have no dots
    assert not jwt.search(report) and not jwt.search(printed)
    assert not any(jwt.search(p.read_text(encoding="utf-8")) for p in out.glob("*.ipynb"))
