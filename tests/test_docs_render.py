"""The documentation site as a reader sees it: built by Sphinx, then rendered
by a real browser (headless Chromium) at 1280 px, the front page (the README
with its quick start) and the configuration page (the widest table).

Each page is checked by a small script that runs in it once it has loaded
(it is added to a copy of the built page, next to the original so that its
styles and scripts load the same): the page is no wider than the window, no
element (a code block, a table) has a horizontal scrollbar, and the project's
name in the sidebar title is on one line. A screenshot of each page is kept.

Skipped where no Chromium is installed (set ``CHROMIUM`` to its path if it
is not on ``PATH`` as ``chromium``, ``chromium-browser`` or
``google-chrome``). Takes 5-10 s.

Also ``make docs-shots``: ``python tests/test_docs_render.py [HTML_DIR
[SHOTS_DIR]]`` renders the pages of an already built site (default
``docs/_build/html``) to ``SHOTS_DIR/*.png`` (default ``docs/_build/shots``),
prints what the check found and exits 1 if a page scrolls sideways.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 1400
# name of the screenshot -> the built page
PAGES = {'index': 'index.html', 'configuration': 'configuration.html'}
BROWSERS = ('chromium', 'chromium-browser', 'google-chrome',
            'google-chrome-stable')
PROJECT = tomllib.loads(
    (ROOT / 'pyproject.toml').read_text())['project']['name']
# Runs in the page once it has loaded; leaves its findings as JSON in an
# attribute of <html>, which --dump-dom then prints.
PROBE = '''<script>
window.addEventListener('load', function () {
  var doc = document.documentElement;
  var out = {viewport: doc.clientWidth, page: doc.scrollWidth,
             scrollbars: [], title_lines: null};
  document.querySelectorAll('body *').forEach(function (el) {
    var x = getComputedStyle(el).overflowX;
    if ((x === 'auto' || x === 'scroll') && el.clientWidth > 0
        && el.scrollWidth > el.clientWidth + 1) {
      out.scrollbars.push(el.tagName.toLowerCase() + '.' + el.className
        + ' (' + el.scrollWidth + ' px in ' + el.clientWidth + ' px): '
        + el.textContent.trim().replace(/\\s+/g, ' ').slice(0, 80));
    }
  });
  var title = document.querySelector('.sidebar-brand-text');
  var text = title && title.firstChild;
  var at = text && text.nodeType === 3 ? text.data.indexOf(PROJECT) : -1;
  if (at >= 0) {
    var range = document.createRange();
    range.setStart(text, at);
    range.setEnd(text, at + PROJECT.length);
    out.title_lines = range.getClientRects().length;
  }
  doc.setAttribute('data-render-probe', JSON.stringify(out));
});
</script>'''.replace('PROJECT', json.dumps(PROJECT))


class Rendered(NamedTuple):
    png: Path
    viewport: int
    page: int
    scrollbars: List[str]
    title_lines: Optional[int]

    def problems(self) -> List[str]:
        found = []
        if self.page > self.viewport:
            found.append(f'the page is {self.page} px wide in a '
                         f'{self.viewport} px window')
        found += [f'horizontal scrollbar: {s}' for s in self.scrollbars]
        if self.title_lines is None:
            found.append(f'no sidebar title with {PROJECT!r} found')
        elif self.title_lines != 1:
            found.append(f'the sidebar title breaks {PROJECT!r} over '
                         f'{self.title_lines} lines')
        return found


def find_browser() -> Optional[str]:
    if os.environ.get('CHROMIUM'):
        return os.environ['CHROMIUM']
    return next(filter(None, map(shutil.which, BROWSERS)), None)


def render(browser: str, page: Path, png: Path) -> Rendered:
    """Screenshot of ``page`` at WIDTH x HEIGHT into ``png``, and the probe's
    findings; one browser run."""
    probe = page.with_name(f'_render_probe_{page.name}')
    html = page.read_text(encoding='utf-8')
    end = html.rfind('</body>')
    assert end >= 0, page
    probe.write_text(html[:end] + PROBE + html[end:], encoding='utf-8')
    try:
        with tempfile.TemporaryDirectory() as profile:
            run = subprocess.run(
                [browser, '--headless', '--no-sandbox', '--disable-gpu',
                 f'--user-data-dir={profile}',
                 f'--window-size={WIDTH},{HEIGHT}',
                 '--run-all-compositor-stages-before-draw',
                 '--virtual-time-budget=2000', f'--screenshot={png}',
                 '--dump-dom', probe.as_uri()],
                capture_output=True, text=True, timeout=60)
    finally:
        probe.unlink()
    start = run.stdout.find('data-render-probe="')
    assert run.returncode == 0 and start >= 0, (
        f'{browser} on {page}: exit {run.returncode}, no probe result\n'
        + run.stderr[-2000:])
    start += len('data-render-probe="')
    raw = run.stdout[start:run.stdout.index('"', start)]
    for entity, char in (('&quot;', '"'), ('&lt;', '<'), ('&gt;', '>'),
                         ('&amp;', '&')):
        raw = raw.replace(entity, char)
    found = json.loads(raw)
    return Rendered(png, found['viewport'], found['page'],
                    found['scrollbars'], found['title_lines'])


def render_all(browser: str, html_dir: Path,
               shots: Path) -> Dict[str, Rendered]:
    shots.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(len(PAGES)) as pool:
        jobs = {name: pool.submit(render, browser, html_dir / page,
                                  shots / f'{name}.png')
                for name, page in PAGES.items()}
        return {name: job.result() for name, job in jobs.items()}


def png_size(png: Path):
    head = png.read_bytes()[:24]
    assert head[:8] == b'\x89PNG\r\n\x1a\n', png
    return struct.unpack('>II', head[16:24])


def test_pages_fit_1280_px(tmp_path):
    browser = find_browser()
    if browser is None:
        pytest.skip('no Chromium installed (set CHROMIUM to its path)')
    html_dir = tmp_path / 'html'
    build = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-q', '-W', '--keep-going', '-b',
         'html', '-d', str(tmp_path / 'doctrees'), str(ROOT / 'docs'),
         str(html_dir)], capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    for name, page in render_all(browser, html_dir,
                                 tmp_path / 'shots').items():
        assert page.png.is_file() and png_size(page.png) == (WIDTH, HEIGHT)
        # The window really was about 1280 px wide (less a scrollbar).
        assert WIDTH - 40 <= page.viewport <= WIDTH, (name, page.viewport)
        assert not page.problems(), (name, page.problems())


def main(argv: List[str]) -> int:
    html_dir = (Path(argv[0]) if argv
                else ROOT / 'docs' / '_build' / 'html').resolve()
    shots = Path(argv[1]).resolve() if len(argv) > 1 else \
        html_dir.parent / 'shots'
    browser = find_browser()
    if browser is None:
        print('[docs-shots] no Chromium found: install it (Debian: apt-get '
              'install chromium) or set CHROMIUM to its path')
        return 1
    failed = False
    for name, page in render_all(browser, html_dir, shots).items():
        problems = page.problems()
        failed |= bool(problems)
        print(f'[docs-shots] {PAGES[name]} -> {page.png} ({WIDTH} px window:'
              f' page {page.page} px wide in {page.viewport} px): '
              + ('; '.join(problems) if problems else 'no sideways scrolling'))
    return int(failed)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
