"""A real JupyterLab in a real browser, for the widget tests: JupyterLab started on a loopback port over a
temporary copy of the notebooks, Chromium (the system's, driven by Playwright) opening them.

``lab_session()`` yields a ``Lab``; everything it starts is ended by PID when the session closes.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]

EMPTY_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "needs the playwright package (pip install -e '.[test]')"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "needs JupyterLab (pip install -e '.[notebooks,test]')"
    if not CHROMIUM.is_file():
        return "needs Chromium (Debian: apt-get install chromium)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """One JupyterLab server and one browser page."""

    def __init__(self, page, url: str, token: str, screens: Path):
        self.page, self.url, self.token, self.screens = page, url, token, screens
        self.console_errors: list[str] = []  # every error the page logged or threw, since it was opened
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))
        page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))

    def open(self, notebook: str, timeout_s: float = 120) -> None:
        """Open a notebook, wait for its kernel, run all cells and wait until every cell has run."""
        self.page.goto(f"{self.url}/lab/tree/{notebook}?reset&token={self.token}")  # reset: only this notebook
        self.page.wait_for_function("(name) => { const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                                    " return nb && nb.context && nb.context.path.endsWith(name)"
                                    " && nb.sessionContext.session && nb.sessionContext.session.kernel; }",
                                    arg=notebook, timeout=timeout_s * 1000)
        self.page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                    ".status === 'idle'", timeout=timeout_s * 1000)
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        self.wait_idle(timeout_s)

    def wait_idle(self, timeout_s: float = 120) -> None:
        """Until no cell is queued or running and the kernel is idle."""
        self.page.wait_for_function(
            "() => { const nb = window.jupyterapp.shell.currentWidget;"
            " const busy = [...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));"
            " return !busy && nb.sessionContext.session.kernel.status === 'idle'; }", timeout=timeout_s * 1000)

    @staticmethod
    def content_box(canvas) -> dict:
        """Where a canvas's pixels are on the page: inside its border."""
        return canvas.evaluate("c => { const r = c.getBoundingClientRect();"
                               " return {x: r.left + c.clientLeft, y: r.top + c.clientTop, width: c.clientWidth}; }")

    def draw(self, canvas, strokes, scale: float = 1.0) -> None:
        """Draw ``strokes`` (lists of [x, y] canvas pixels, times ``scale``) into a canvas with the mouse."""
        canvas.scroll_into_view_if_needed()
        box = self.content_box(canvas)
        for stroke in strokes:
            points = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in stroke]
            self.page.mouse.move(*points[0])
            self.page.mouse.down()
            for point in points[1:]:
                self.page.mouse.move(*point)
            self.page.mouse.up()

    def cell(self, text: str):
        """The notebook cell whose source contains ``text`` (a Playwright locator)."""
        return self.page.locator(".jp-Notebook .jp-Cell", has_text=text).last

    def kernel(self, code: str, timeout_s: float = 120) -> str:
        """Run ``code`` in the notebook's kernel (outside any cell) and return what it printed."""
        return self.page.evaluate(
            """([code, timeout]) => new Promise((resolve, reject) => {
                 const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                 const future = kernel.requestExecute({code, store_history: false});
                 let text = "";
                 future.onIOPub = msg => {
                   if (msg.header.msg_type === "stream") text += msg.content.text;
                   if (msg.header.msg_type === "error") reject(new Error(msg.content.evalue));
                 };
                 future.done.then(() => resolve(text));
                 setTimeout(() => reject(new Error("kernel timeout")), timeout);
               })""", [code, timeout_s * 1000])

    def errors_shown(self) -> list[str]:
        """Text of every error or stderr output the page shows (tracebacks included)."""
        return self.page.eval_on_selector_all(
            "[data-mime-type='application/vnd.jupyter.stderr'], .jp-OutputArea-output[data-mime-type*='error']",
            "els => els.map(e => e.textContent)")


def image_stats(page, img) -> dict:
    """The displayed image as the browser decoded it: natural size and the fraction of non-white pixels."""
    return img.evaluate(
        """img => { const c = document.createElement('canvas');
             c.width = img.naturalWidth; c.height = img.naturalHeight;
             const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
             if (!c.width || !c.height) return {width: 0, height: 0, ink: 0};
             const d = ctx.getImageData(0, 0, c.width, c.height).data;
             let ink = 0;
             for (let i = 0; i < d.length; i += 4)
               if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) ink++;
             return {width: c.width, height: c.height, ink: ink / (c.width * c.height)}; }""")


def png_stats(data: bytes) -> dict:
    """``image_stats`` for PNG bytes decoded here (the reference redraw)."""
    import io

    import numpy as np
    from PIL import Image

    rgba = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
    ink = (rgba[..., 3] > 0) & (rgba[..., :3] < 250).any(axis=-1)
    return {"width": rgba.shape[1], "height": rgba.shape[0], "ink": float(ink.mean())}


@contextlib.contextmanager
def lab_session(notebooks, tmp_path: Path, env: dict | None = None):
    """JupyterLab over copies of ``notebooks`` in ``tmp_path`` (so autosave never touches the repository), and
    a headless Chromium page. Yields a ``Lab``."""
    from playwright.sync_api import sync_playwright

    work = tmp_path / "lab"
    work.mkdir()
    for nb in notebooks:
        shutil.copy2(nb, work / Path(nb).name)
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news pop-up
    server_env = dict(os.environ, **(env or {}), JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
                      JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
                      JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"))
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
                               "--LabApp.expose_app_in_browser=True", "--ServerApp.allow_root=True"],
                              env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    json.loads(r.read())
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                # nothing outside the server is reachable here (the notebooks' Colab badges): an empty image
                # stands in, so a console error always means the page itself went wrong
                page.route(lambda where: not where.startswith(url), lambda route: route.fulfill(
                    status=200, content_type="image/svg+xml", body=EMPTY_SVG))
                screens = tmp_path / "screens"
                screens.mkdir()
                yield Lab(page, url, token, screens)
            finally:
                browser.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
