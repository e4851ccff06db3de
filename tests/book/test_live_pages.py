"""The rendered book in headless Chromium, opened from disk with no network: every page loads without a
console error or a request off the disk, and every live widget samples in the page.

These run after the book is built (`make test` builds it, then runs them); they skip when _build/html is
missing, and without Chromium unless $TINYDIFF_REQUIRE_BROWSER is set (CI). $TINYDIFF_SHOTS=DIR saves a
screenshot of each widget after it ran, to look at.
"""

import os
from pathlib import Path

import pytest

from tinydiff.web import call

BOOK = Path(__file__).resolve().parents[2] / "_build" / "html"
PAGES = sorted(p for p in BOOK.rglob("*.html")
               if "_static" not in p.parts and p.name not in ("genindex.html", "search.html"))
# page -> the live widget it holds
WIDGETS = {"notebooks/01_forward_diffusion.html": "noising", "notebooks/02b_sampling.html": "sampler",
           "notebooks/03b_generation.html": "cascade", "notebooks/04_temporal_consistency.html": "ablation",
           "notebooks/06_your_own_digit.html": "draw"}

pytestmark = pytest.mark.skipif(not (BOOK / "index.html").exists(), reason="the book is not built (make run)")


def _problems(browser) -> list[str]:
    """Console errors, and any resource requested from somewhere other than the disk."""
    logs = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    remote = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((name) => !/^(file|blob|data):/.test(name))")
    return logs + [f"requested {name}" for name in remote]


def _shot(browser, widget, name):
    folder = os.environ.get("TINYDIFF_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        widget.screenshot(str(Path(folder) / f"{name}.png"))


def test_the_book_has_a_page_for_every_widget():
    names = {p.relative_to(BOOK).as_posix() for p in PAGES}
    assert set(WIDGETS) <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(BOOK).as_posix())
def test_page_loads_offline_without_console_errors(browser, page):
    browser.get(page.as_uri())
    browser.execute_script("return document.readyState")
    assert _problems(browser) == []
    name = page.relative_to(BOOK).as_posix()
    found = browser.execute_script(
        "return Array.from(document.querySelectorAll('.tinydiff-live')).map((e) => e.dataset.widget)")
    assert found == ([WIDGETS[name]] if name in WIDGETS else [])


def _open(browser, page):
    browser.get((BOOK / page).as_uri())
    widget = browser.find_element("css selector", ".tinydiff-live.tdw-ready")
    browser.execute_script("arguments[0].scrollIntoView()", widget)
    return widget


def test_forward_noising_follows_its_sliders(browser):
    widget = _open(browser, "notebooks/01_forward_diffusion.html")
    pictures = []
    for t, schedule in ((0, "cosine"), (500, "cosine"), (500, "linear"), (999, "linear")):
        call(browser, """(() => {
            const root = document.querySelector('.tinydiff-live'), [slider] = root.querySelectorAll('input[type=range]');
            const select = root.querySelector('select');
            select.value = args[1]; select.dispatchEvent(new Event('change'));
            slider.value = args[0]; slider.dispatchEvent(new Event('input'));
        })()""", t, schedule)
        pictures.append(call(browser, "document.querySelector('.tinydiff-live canvas').toDataURL()"))
        assert f"t = {t}:" in widget.text
    assert len(set(pictures)) == 4  # each setting draws another picture
    _shot(browser, widget, "noising")
    assert _problems(browser) == []


SAMPLE = """(async () => {
    const root = document.querySelector('.tinydiff-live');
    const done = new Promise((resolve) => root.addEventListener('tinydiff:done', resolve, {once: true}));
    const button = root.querySelector('.tdw-go');
    button.click();
    const disabled = button.disabled && Array.from(root.querySelectorAll('select, input')).every((e) => e.disabled);
    await done;
    return {disabled, message: root.querySelector('.tdw-message').textContent,
            status: root.querySelector('.tdw-status').textContent,
            canvases: root.querySelectorAll('.tdw-output canvas').length,
            enabled: !button.disabled};
})()"""


@pytest.mark.parametrize("page, canvases", [("notebooks/02b_sampling.html", 4),
                                            ("notebooks/03b_generation.html", 4),
                                            ("notebooks/04_temporal_consistency.html", 12)])
def test_sampling_widget_samples_in_the_page(browser, page, canvases):
    widget = _open(browser, page)
    result = call(browser, SAMPLE)
    assert result["message"] == ""
    assert result["disabled"] and result["enabled"]  # controls off while it ran, on again after
    assert result["canvases"] == canvases and result["status"].startswith("done in")
    _shot(browser, widget, WIDGETS[page])
    assert _problems(browser) == []


def test_drawing_widget_animates_a_drawn_digit(browser):
    widget = _open(browser, "notebooks/06_your_own_digit.html")
    blank = call(browser, SAMPLE)
    assert "draw a digit first" in blank["message"]
    call(browser, """(() => {  // a "1": one stroke down the middle, as a pointer would draw it
        const pad = document.querySelector('.tdw-pad'), box = pad.getBoundingClientRect();
        const at = (type, y) => pad.dispatchEvent(new PointerEvent(type, {
            pointerId: 1, clientX: box.left + box.width / 2, clientY: box.top + y * box.height, bubbles: true}));
        at('pointerdown', 0.15); for (let y = 0.2; y <= 0.85; y += 0.05) at('pointermove', y); at('pointerup', 0.85);
    })()""")
    result = call(browser, SAMPLE)
    assert result["message"] == "" and result["canvases"] == 3
    _shot(browser, widget, "draw")
    assert _problems(browser) == []


def test_without_webassembly_a_widget_says_so_and_stays_off(browser):
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "delete window.WebAssembly;"})
    try:
        _open(browser, "notebooks/03b_generation.html")
        state = call(browser, """(() => {
            const root = document.querySelector('.tinydiff-live');
            return {message: root.querySelector('.tdw-message').textContent, off: root.querySelector('.tdw-go').disabled};
        })()""")
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]})
    assert state["off"] and "no WebAssembly" in state["message"]
