"""`invia-data demo`: the toolkit end to end against the embedded simulator, with no account.

It starts the simulator, executes the quickstart and live order-book notebooks headless,
draws the gallery of plots, and writes an HTML report plus the PNG files into one folder.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("invia_data.demo")

DEMO_NOTEBOOKS = ("01-quickstart.ipynb", "02-order-book-live.ipynb")


def notebooks_dir() -> Path:
    """The example notebooks: the package's own copy in an installed wheel, else the
    `notebooks/` folder of the source checkout beside the package."""
    package = Path(__file__).resolve().parent
    for here in (package / "notebooks", package.parent / "notebooks"):
        if any(here.glob("*.ipynb")):
            return here
    from .errors import InvalidArgument

    raise InvalidArgument(f"no notebooks in {package / 'notebooks'}: reinstall invia-data "
                          "from its wheel or run from a source checkout")


def copy_notebooks(target: str | os.PathLike[str], *, overwrite: bool = False) -> list[Path]:
    """Copy the example notebooks into ``target`` (made if missing) for the user to open in
    Jupyter; existing files are kept unless ``overwrite``. Returns the notebooks written."""
    import shutil

    folder = Path(target).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for notebook in sorted(notebooks_dir().glob("*.ipynb")):
        destination = folder / notebook.name
        if destination.exists() and not overwrite:
            continue
        shutil.copyfile(notebook, destination)
        written.append(destination)
    return written


@dataclass
class DemoResult:
    out: Path
    report: Path | None = None
    pictures: list[Path] = field(default_factory=list)
    notebooks: list[Path] = field(default_factory=list)
    notebook_pictures: list[Path] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """What the demo saw and where it put it, for the terminal."""
        lines = []
        for title, table in self.tables.items():
            lines += [f"\n== {title} ==", table]
        lines += [f"\nDone in {self.seconds:.1f} s. Report: {self.report}"]
        lines += [f"  notebook: {p}" for p in self.notebooks]
        lines += [f"  picture:  {p}" for p in self.pictures]
        return "\n".join(lines)


def run_demo(out_dir: str | os.PathLike[str] = "demo-output", *,
             notebooks: Sequence[str] = DEMO_NOTEBOOKS, timeout: int = 300,
             pictures: str | os.PathLike[str] | None = None) -> DemoResult:
    """Run the demo into ``out_dir``; the result says what it saw and where it put it.
    ``pictures``: also copy the charts there (``docs/pictures`` refreshes the README's)."""
    import matplotlib

    matplotlib.use("Agg")
    from . import sim

    result = DemoResult(Path(out_dir).resolve())
    result.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with sim.run(port=0, seed=1) as server:
        env = {"INVIA_ENV": server.url, "INVIA_REFRESH_TOKEN": server.refresh_token,
               "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
        draw_gallery(server, result, Path(pictures) if pictures is not None else None)
        sections = [execute_notebook(notebooks_dir() / name, result, env, timeout)
                    for name in notebooks]
    result.seconds = time.monotonic() - started
    result.report = write_report(result, sections)
    return result


def draw_gallery(server, result: DemoResult, pictures: Path | None = None) -> None:
    """Read the simulator's market and portfolio into tables; draw every chart of
    `invia_data.plots` into the output folder (and into ``pictures`` when given)."""
    import shutil

    import pandas as pd

    from .client import connect
    from .gallery import make_pictures

    inv = connect(server.refresh_token, env=server.url)
    try:
        quotes = inv.quotes(["SBER", "GAZP", "LKOH", "ITS:SOGN"])
        candles = inv.history("SBER", tf="1h", start=inv.time().floor("D") - pd.Timedelta(days=10))
        book = inv.orderbook("ITS:SOGN", depth=5)
        positions = inv.positions()
        with inv.stream.orderbook("SBER", depth=20) as live_book:
            live_book.wait(updates=3, timeout=10)
            ladder = _ladder_html(live_book)
            health = inv.stream.health()
        result.pictures = make_pictures(inv, result.out)
    finally:
        inv.close()
    with pd.option_context("display.width", 120, "display.max_columns", 10):
        result.tables = {
            "quotes": quotes.set_index("symbol")[
                ["last_price", "bid", "ask", "bid_vol", "ask_vol", "volume"]].to_string(),
            "order book ITS:SOGN, depth 5 (the Invia page's example)": book.to_string(),
            "SBER, last 1-hour candles": candles.tail(5).to_string(),
            "positions": positions[["symbol", "qty_units", "avg_price", "current_volume",
                                    "unrealised_pl"]].to_string(),
            "live stream health": health.to_string(),
        }
    (result.out / "orderbook-ladder.html").write_text(ladder, encoding="utf-8")
    if pictures is not None:
        pictures.mkdir(parents=True, exist_ok=True)
        for path in result.pictures:
            shutil.copy2(path, pictures / path.name)


def _ladder_html(live_book) -> str:
    from .widgets import render_ladder

    return render_ladder(live_book.df, depth=10)


def execute_notebook(path: Path, result: DemoResult, env: dict[str, str], timeout: int) -> str:
    """Execute one notebook in a fresh kernel; save it and its pictures; return its HTML."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment: it connects to this simulator
    try:
        # local sockets rather than TCP ports: the kernel then has no plain-text warning to print
        with tempfile.TemporaryDirectory(prefix="invia-kernel-") as sockets:
            ipc = Config({"KernelManager": {"transport": "ipc",
                                            "ip": os.path.join(sockets, "kernel")}})
            NotebookClient(nb, timeout=timeout, kernel_name="python3", config=ipc,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    nbformat.write(nb, result.out / path.name)
    result.notebooks.append(result.out / path.name)
    result.notebook_pictures += _save_pictures(nb, result.out, path.stem)
    body, _ = HTMLExporter(template_name="basic").from_notebook_node(nb)
    log.info("executed %s", path.name)
    return f'<section><h2>{html.escape(path.stem)}</h2>{body}</section>'


def _save_pictures(nb, out: Path, stem: str) -> list[Path]:
    paths: list[Path] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                path = out / f"{stem}-{len(paths) + 1}.png"
                path.write_bytes(base64.b64decode(data["image/png"]))
                paths.append(path)
    return paths


def write_report(result: DemoResult, sections: list[str]) -> Path:
    out, seconds = result.out, result.seconds
    pictures = result.pictures
    gallery = "".join(
        f'<figure><img src="{p.name}" alt="{html.escape(p.stem)}"><figcaption>'
        f'{html.escape(p.stem)}</figcaption></figure>' for p in pictures)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>invia-data demo</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; }}
figure {{ display: inline-block; margin: 0.5em; }} img {{ max-width: 520px; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ padding: 2px 6px; border-bottom: 1px solid #ddd; }}
pre {{ background: #f6f6f6; padding: 0.5em; overflow-x: auto; }}
</style></head><body>
<h1>invia-data demo</h1>
<p>Everything below ran against the embedded simulator in {seconds:.1f} s, with no account.</p>
<h2>Plots</h2>{gallery}
<h2>Order-book ladder</h2>{(out / "orderbook-ladder.html").read_text(encoding="utf-8")}
{"".join(sections)}
</body></html>"""
    report = out / "report.html"
    report.write_text(page, encoding="utf-8")
    return report
