"""Check in a real JupyterLab that ``book.widget()`` updates live, and save its picture.

Starts JupyterLab headless on 127.0.0.1 in a scratch folder holding the cells of
``notebooks/02-order-book-live.ipynb`` up to its ``book.widget()`` cell (plus one idle cell),
runs them in headless Chromium through Selenium against the embedded simulator, then:

- reads the ladder's text twice, ``--interval`` seconds apart, and screenshots the widget;
- counts the ladder's DOM changes over a few seconds (how often it redraws in the browser);
- presses pause (the ladder must freeze, the badge say ``paused``, the button ``resume``), then
  resumes;
- picks depth 5 in the selector (the ladder must show 5 asks and 5 bids);
- runs ``book.close()`` in a new cell (the badge must say ``closed``, the controls be disabled);
- collects the browser console errors, stderr outputs in any cell and output in the idle cell
  (a background thread writing into whatever cell runs), and tracebacks in the server log.

It prints what it saw, writes the widget picture to ``--out`` and exits 1 if a check failed.
Needs JupyterLab, ipywidgets, selenium, Chromium and chromedriver, which are not dependencies
of the package (install them in a separate environment with invia-data installed)::

    python docs/lab_screenshot.py --out docs/pictures/widget-ladder.png
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "02-order-book-live.ipynb"
IDLE_CELL = "import time\ntime.sleep(6)"
CHROME_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--window-size=1200,1600", "--force-device-scale-factor=2",
)
# Turns off JupyterLab's news and update checks: the network is loopback only.
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                {"fetchNews": "false", "checkForUpdates": False}}
# Counts the ladder's redraws in the page: the widget replaces the HTML widget's content.
COUNT_MUTATIONS = """
const node = arguments[0].querySelector('.invia-ladder').parentElement;
window.__ladderChanges = 0;
new MutationObserver(() => { window.__ladderChanges += 1; })
  .observe(node, {childList: true});
"""


def scratch_notebook(folder: Path) -> Path:
    """The notebook's cells up to its ``book.widget()`` cell, then a cell that only sleeps."""
    nb = json.loads(NOTEBOOK.read_text())
    cells = []
    for cell in nb["cells"]:
        cells.append(cell)
        if cell["cell_type"] == "code" and "book.widget()" in "".join(cell["source"]):
            break
    else:
        raise SystemExit(f"no book.widget() cell in {NOTEBOOK}")
    cells.append({"cell_type": "code", "execution_count": None, "id": "idle", "metadata": {},
                  "outputs": [], "source": IDLE_CELL})
    for cell in cells:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["cells"] = cells
    path = folder / "book.ipynb"
    path.write_text(json.dumps(nb))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def jupyter_lab(folder: Path, log_path: Path):
    """A JupyterLab server on 127.0.0.1 serving ``folder``; yields (url, token)."""
    port, token = free_port(), secrets.token_hex(16)
    settings = folder / ".settings"
    for name, values in LAB_SETTINGS.items():
        target = settings / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / ".workspaces"),
           "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"), "JUPYTER_TOKEN": token}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--ServerApp.root_dir={folder}", "--allow-root",
           "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  cwd=folder)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"JupyterLab exited: see {log_path}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit("JupyterLab did not start within 60 s")
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


@contextmanager
def chromium(profile: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def run_all_cells(driver: webdriver.Chrome, timeout: float) -> None:
    """Select the first cell and press Shift+Enter once per cell, as a person would."""
    WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: "| Idle" in d.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget").text
        or any("| Idle" in e.text for e in d.find_elements(By.CSS_SELECTOR,
                                                            ".jp-StatusBar-TextItem")))
    time.sleep(1)  # the notebook finishes laying out its cells
    WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")[0].click() or True)
    cells = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")
    for _ in cells:
        ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT) \
            .perform()
        time.sleep(0.3)


def ladder_widget(driver: webdriver.Chrome, timeout: float) -> WebElement:
    """The widget's outer box, once its ladder has rendered with rows. The ladder element itself
    is replaced on every redraw, so it is always looked up afresh inside the box, in one script
    (a reference to it would go stale between two calls)."""
    WebDriverWait(driver, timeout).until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, ".invia-ladder tbody tr.bid")))
    return driver.execute_script(
        "return document.querySelector('.invia-ladder').closest('.widget-vbox');")


def ladder_text(box: WebElement) -> str:
    return box.parent.execute_script(
        "return arguments[0].querySelector('.invia-ladder').innerText;", box)


def badge_text(box: WebElement) -> str:
    texts = box.parent.execute_script(
        "return Array.from(arguments[0].querySelectorAll('.widget-hbox .widget-html'))"
        ".map(e => e.innerText);", box)
    for text in texts:
        if "updated" in text or "no data" in text:
            return " ".join(text.split())
    return ""


def ladder_rows(box: WebElement, side: str) -> int:
    return box.parent.execute_script(
        f"return arguments[0].querySelectorAll('.invia-ladder tbody tr.{side}').length;", box)


def cell_problems(driver: webdriver.Chrome) -> list[str]:
    """stderr or error outputs in any cell, and any output in the last (idle) cell."""
    problems = []
    cells = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")
    for number, cell in enumerate(cells, 1):
        for kind in ("application/vnd.jupyter.stderr", "application/vnd.jupyter.error"):
            for out in cell.find_elements(By.CSS_SELECTOR, f"[data-mime-type='{kind}']"):
                problems.append(f"cell {number} {kind}: {out.get_attribute('innerText')[:300]}")
    if cells:
        stray = cells[-1].find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
        problems += [f"idle cell got output: {o.get_attribute('innerText')[:300]}"
                     for o in stray]
    return problems


def console_errors(driver: webdriver.Chrome) -> list[str]:
    return [entry["message"][:300] for entry in driver.get_log("browser")
            if entry["level"] in ("SEVERE", "ERROR")]


def server_problems(log_path: Path) -> list[str]:
    text = log_path.read_text(errors="replace")
    return [line for line in text.splitlines()
            if re.search(r"Traceback|\[E |Exception|Error:", line)][:20]


class Checks:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def expect(self, ok: bool, what: str, detail: Any = "") -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail != "" else ""))
        if not ok:
            self.failed.append(what)


def count_redraws(driver: webdriver.Chrome, box: WebElement, seconds: float) -> int:
    """How many times the ladder's content was replaced in ``seconds``."""
    driver.execute_script(COUNT_MUTATIONS, box)
    time.sleep(seconds)
    return int(driver.execute_script("return window.__ladderChanges;"))


def check_pause(box: WebElement, checks: Checks, seconds: float) -> None:
    button = box.find_element(By.CSS_SELECTOR, "button.widget-toggle-button")
    button.click()
    time.sleep(0.6)  # the press reaches the kernel, a tick passes
    frozen = ladder_text(box)
    time.sleep(seconds)
    checks.expect(ladder_text(box) == frozen, "pause freezes the ladder")
    checks.expect(badge_text(box).startswith("paused"), "badge says paused", badge_text(box))
    checks.expect(button.text.strip() == "resume", "the button offers to resume", button.text)
    button.click()
    time.sleep(seconds)
    checks.expect(ladder_text(box) != frozen, "resume brings the ladder back to life")
    checks.expect(badge_text(box).startswith("live"), "badge says live again", badge_text(box))


def check_close(driver: webdriver.Chrome, checks: Checks) -> None:
    """Run ``book.close()`` in a new cell: the badge must say closed, the controls go dim."""
    editor = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell .cm-content")[-1]
    editor.click()
    ActionChains(driver).send_keys("book.close()").key_down(Keys.SHIFT).send_keys(Keys.ENTER) \
        .key_up(Keys.SHIFT).perform()
    box = ladder_widget(driver, timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not badge_text(box).startswith("closed"):
        time.sleep(0.2)
    checks.expect(badge_text(box).startswith("closed"), "book.close() turns the badge to closed",
                  badge_text(box))
    final = ladder_text(box)
    time.sleep(1)
    checks.expect(ladder_text(box) == final, "a closed book's ladder stays still")
    disabled = driver.execute_script(
        "return Array.from(arguments[0].querySelectorAll('button, select'))"
        ".map(e => e.disabled);", box)
    checks.expect(disabled == [True, True], "pause and depth are disabled", disabled)


def wait_idle(driver: webdriver.Chrome, timeout: float) -> None:
    """Until the kernel runs no cell: a widget's clicks reach the kernel only between cells."""
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
        "const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
        "return s !== null && s.getAttribute('data-status') === 'idle';"))


def check_depth_selector(box: WebElement, checks: Checks) -> None:
    select = Select(box.find_element(By.CSS_SELECTOR, ".widget-dropdown select"))
    select.select_by_visible_text("5")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ladder_rows(box, "bid") != 5:
        time.sleep(0.1)
    rows = (ladder_rows(box, "ask"), ladder_rows(box, "bid"))
    checks.expect(rows == (5, 5), "depth selector: 5 asks and 5 bids", rows)
    select.select_by_visible_text("10")
    while time.monotonic() < deadline + 5 and ladder_rows(box, "bid") != 10:
        time.sleep(0.1)


CONTENT_RIGHT = """
const box = arguments[0], left = box.getBoundingClientRect().left;
let right = 0;
for (const el of box.querySelectorAll('.widget-hbox > *')) {  // flex items: their own width
  right = Math.max(right, el.getBoundingClientRect().right - left);
}
for (const el of box.querySelectorAll('.widget-html-content > *')) {  // blocks: their text
  const range = document.createRange();
  range.selectNodeContents(el);
  right = Math.max(right, range.getBoundingClientRect().right - left);
}
return right * window.devicePixelRatio;
"""


def content_width(driver: webdriver.Chrome, box: WebElement) -> int:
    """Pixels from the widget's left edge to the right end of its widest content (the widget
    box itself spans the whole output area)."""
    return int(driver.execute_script(CONTENT_RIGHT, box))


def save_picture(png: bytes, width: int, out: Path) -> None:
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(io.BytesIO(png))
    margin = image.width // 100
    image.crop((0, 0, min(image.width, width + margin), image.height)).save(out)
    print(f"wrote {out} ({image.width} px wide cropped to {min(image.width, width + margin)})")


def inspect(driver: webdriver.Chrome, url: str, token: str, args: argparse.Namespace,
            checks: Checks, log_path: Path) -> None:
    driver.get(f"{url}/lab/tree/book.ipynb?token={token}")
    run_all_cells(driver, timeout=90)
    box = ladder_widget(driver, timeout=90)
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", box)
    time.sleep(1.5)
    first_text, first_badge = ladder_text(box), badge_text(box)
    first_png = box.screenshot_as_png
    time.sleep(args.interval)
    second_text, second_badge = ladder_text(box), badge_text(box)
    second_png = box.screenshot_as_png
    width = content_width(driver, box)
    changed = sum(a != b for a, b in zip(first_text.splitlines(), second_text.splitlines(),
                                         strict=False))
    checks.expect(first_text != second_text, f"ladder text changed over {args.interval:g} s",
                  f"{changed} lines differ")
    checks.expect(first_png != second_png, "screenshots differ")
    checks.expect(first_badge.startswith("live") and second_badge.startswith("live"),
                  "badge is live", f"{first_badge!r} then {second_badge!r}")
    redraws = count_redraws(driver, box, args.measure)
    checks.expect(redraws > 0, f"ladder redraws in the browser over {args.measure:g} s",
                  f"{redraws} DOM changes, {redraws / args.measure:.1f}/s")
    wait_idle(driver, timeout=30)
    check_pause(box, checks, seconds=args.interval)
    check_depth_selector(box, checks)
    save_picture(second_png, width, args.out)
    # the idle cell has finished sleeping by now: anything it shows came from another thread
    problems = cell_problems(driver)
    checks.expect(not problems, "no stderr, error or stray output in the cells", problems)
    check_close(driver, checks)
    errors = console_errors(driver)
    checks.expect(not errors, "no errors in the browser console", errors)
    server = server_problems(log_path)
    checks.expect(not server, "no tracebacks or errors in the server log", server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/pictures/widget-ladder.png")
    parser.add_argument("--interval", type=float, default=2.0,
                        help="seconds between the two readings of the ladder")
    parser.add_argument("--measure", type=float, default=5.0,
                        help="seconds over which redraws are counted")
    parser.add_argument("--log", type=Path, help="where to keep the JupyterLab server's log")
    args = parser.parse_args(argv)
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="invia-lab-") as tmp:
        folder = Path(tmp)
        scratch_notebook(folder)
        log_path = args.log or folder / "jupyterlab.log"
        with jupyter_lab(folder, log_path) as (url, token), chromium(folder / ".chromium") as d:
            inspect(d, url, token, args, checks, log_path)
    print("all checks passed" if not checks.failed else f"failed: {checks.failed}")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
