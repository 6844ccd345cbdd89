"""index.html in a real headless browser (issue 15 item 4): the page loads with no console
error and every embedded image decodes (``naturalWidth > 0``). Uses Chromium (Debian's
``chromium-headless-shell`` or ``chromium``, which .ci/run installs when apt can); skipped,
saying why, where no such browser is installed.

The page is probed from inside: a script put first in ``<head>`` records every error event
(script errors, resources that fail to load) and ``console.error`` call, and on ``load``
writes them and each image's state into the DOM, which ``--dump-dom`` prints."""

from __future__ import annotations

import html as html_module
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fdbench.report import render_report

FIXTURES = Path(__file__).parent / "fixtures" / "report"
SOURCES = [FIXTURES / name for name in ("bench", "sweep", "proofs", "run")]
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome",
            "/usr/lib/chromium-headless-shell/chromium-headless-shell",
            "/usr/lib/chromium/chromium-headless-shell", "/usr/lib/chromium/chromium")

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(e.message
  || ("failed to load " + (e.target && (e.target.alt || e.target.tagName)))), true);
const __consoleError = console.error;
console.error = (...args) => { window.__errors.push(args.join(" ")); __consoleError(...args); };
window.addEventListener("load", () => {
  const images = [...document.images].map((img, i) =>
    `${i}:${img.complete && img.naturalWidth > 0 ? "decoded" : "broken"}:${img.naturalWidth}`);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = "IMAGES " + images.join(" ") + " ERRORS " + JSON.stringify(window.__errors)
    + " END";
  document.body.appendChild(out);
});
</script>"""


def browser() -> str | None:
    """A headless-capable Chromium on this machine, or None."""
    for name in BROWSERS:
        found = shutil.which(name) if "/" not in name else (name if Path(name).is_file()
                                                             else None)
        if found:
            return found
    return None


def probe(page: Path, tmp_path: Path) -> tuple[list[str], list[str], str]:
    """(image states, errors recorded in the page, browser stderr) of ``page`` loaded by
    the headless browser (with the probe script injected into a copy)."""
    exe = browser()
    if exe is None:
        pytest.skip("no headless Chromium installed (apt-get install chromium-headless-shell)")
    html = page.read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    done = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
         "--enable-logging=stderr", "--v=0", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=300, check=False)
    # the probe's own <pre> (the script source in the dump holds the same words)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe output (rc {done.returncode}): {done.stderr[-2000:]}"
    match = re.fullmatch(r"IMAGES (.*?) ERRORS (.*?) END", html_module.unescape(found[1]), re.S)
    assert match, found[1]
    images = match[1].split()
    errors = [] if match[2].strip() == "[]" else [match[2]]
    return images, errors, done.stderr


def console_errors(stderr: str) -> list[str]:
    """Console messages of level error (and uncaught exceptions) the browser logged."""
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line and ("Uncaught" in line or ":ERROR:" in line
                                      or "Error" in line)]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if browser() is None:
        pytest.skip("no headless Chromium installed (apt-get install chromium-headless-shell)")
    return render_report(SOURCES, tmp_path_factory.mktemp("browser") / "report") / "index.html"


def test_report_loads_without_errors_and_every_image_decodes(page: Path,
                                                             tmp_path: Path) -> None:
    images, errors, stderr = probe(page, tmp_path)
    assert images, "the page holds no image"
    assert page.read_text().count("<img ") == len(images)
    assert all(state.split(":")[1] == "decoded" and int(state.split(":")[2]) > 0
               for state in images), images
    assert errors == [] and console_errors(stderr) == []


def test_the_probe_sees_a_broken_image_and_a_script_error(page: Path, tmp_path: Path) -> None:
    """Planted faults: one image's PNG cut short and a call to an undefined function;
    the probe must report both (a check that could never fail would prove nothing)."""
    html = page.read_text(encoding="utf-8")
    start = html.index("data:image/png;base64,") + len("data:image/png;base64,")
    broken = html[:start] + "iVBORw0KGgoAAAA" + html[html.index('"', start):]
    planted = tmp_path / "planted.html"
    planted.write_text(broken.replace("</body>", "<script>undefined_function();</script>"
                                      "</body>"), encoding="utf-8")
    images, errors, stderr = probe(planted, tmp_path)
    assert images[0].split(":")[1] == "broken"
    assert all(state.split(":")[1] == "decoded" for state in images[1:])
    assert errors and "undefined_function" in errors[0]
    assert any("undefined_function" in line for line in console_errors(stderr))
