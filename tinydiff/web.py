"""The book's live pages: the files their JavaScript samples with, and the Sphinx extension that writes them.

The rendered book samples the shipped networks in the reader's browser (book/_static/tinydiff.js, with
onnxruntime-web's WebAssembly backend), with no kernel and no server. Its build writes into
`_static/tinydiff/`:

- each network the pages sample with (`NETWORKS`) as an ONNX graph (`tinydiff.onnx_export`), exported from
  the shipped weights (cached by their SHA-256, so a rebuild exports nothing), and `models.js`, the
  catalogue the page reads: each network's file, shape, schedule, prediction, trained modes and label prior;
- onnxruntime-web, vendored in book/vendor/onnxruntime-web (its README says where it comes from), each
  file checked against its SHA-256.

A page opened from disk (file://) may not fetch files, so every binary is also written as a script that
carries it in base64 (NAME.js beside NAME); tinydiff.js loads that form only on file://.

The extension is named in _config.yml (`sphinx.extra_extensions`); `write_assets` is the same work
without Sphinx (tests/test_web.py).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

from .checkpoint import label_prior_of, load_shipped
from .errors import ConfigError
from .registry import ABLATION, CASCADE, recorded_sha256, shipped

ASSETS = "tinydiff"  # the folder under _static/ that holds what the pages sample with
# The live widgets (book/_static/tinydiff-widgets.js) and the networks each samples with; the forward
# noising of chapter 1 is computed in the page.
WIDGETS = {"noising": (), "sampler": ("writer",), "cascade": shipped(CASCADE).stages,
           "ablation": ABLATION, "draw": (shipped(CASCADE).stages[1],)}
NETWORKS = tuple(dict.fromkeys(name for names in WIDGETS.values() for name in names))  # what the build exports
RUNTIME_VERSION = "1.31.1"
# onnxruntime-web's files (book/vendor/onnxruntime-web, from the npm package's dist/): name -> SHA-256.
RUNTIME = {
    "ort.wasm.min.js": "b8a78c408c40da65fdc8ba0846f7b2948e92a4c6d6b23cc8e4165e428ad95443",
    "ort-wasm-simd-threaded.mjs": "30ed0b5cd1182ede931fea448afb567d4dc705ec957af09f108a2be5f770dac3",
    "ort-wasm-simd-threaded.wasm": "4b884c203b0fa48d057be3332c65513ff85aa3c5bddd6946acc0fab7ecda001d",
}
SCRIPTS, STYLES = ("tinydiff.js", "tinydiff-widgets.js"), ("tinydiff-widgets.css",)  # in book/_static
CARRIED = ("ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")  # fetched by tinydiff.js, so carried too


def _export(name: str, cache: Path) -> tuple[Path, dict]:
    """The network's ONNX graph (exported once per SHA-256 of its weights) and its catalogue entry."""
    from .onnx_export import OPSET, export_onnx  # torch.onnx loads only when the book is built
    from .train import load_trained

    payload, model, modes = load_shipped(name, load_trained)
    cfg = model.cfg
    graph = cache / f"{name}-{recorded_sha256(name)[:16]}-opset{OPSET}.onnx"  # the weights and how they were exported
    if not graph.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = graph.with_suffix(f".{os.getpid()}.tmp.onnx")
        export_onnx(model, partial)
        partial.replace(graph)  # a build stopped halfway leaves no broken graph behind
    prior = label_prior_of(payload)
    entry = {"file": f"{name}.onnx", "frames": cfg.frames, "size": cfg.size, "conditional": cfg.conditional,
             "labels": cfg.labels, "prediction": cfg.prediction, "schedule": cfg.schedule,
             "num_timesteps": cfg.num_timesteps, "modes": sorted(modes) if modes is not None else None,
             "label_prior": None if prior is None else [round(p, 8) for p in prior.tolist()]}
    return graph, entry


def _carrier(folder: Path, name: str, data: bytes) -> None:
    """NAME.js: the file's bytes in base64, handed to tinydiff.js (for pages opened from disk)."""
    encoded = base64.b64encode(data).decode("ascii")
    (folder / f"{name}.js").write_text(f'tinydiff._carry("{name}", "{encoded}");\n')


def _runtime_file(vendor: Path, name: str) -> bytes:
    packed = vendor / f"{name}.gz"
    path = packed if packed.exists() else vendor / name
    try:
        data = gzip.decompress(path.read_bytes()) if path == packed else path.read_bytes()
    except OSError as error:
        raise ConfigError(f"onnxruntime-web's {name} is missing from {vendor} ({error})") from None
    if hashlib.sha256(data).hexdigest() != RUNTIME[name]:
        raise ConfigError(f"{path} is not onnxruntime-web {RUNTIME_VERSION}'s {name} (its SHA-256 differs); "
                          f"see {vendor / 'README.md'}")
    return data


def write_assets(folder: str | os.PathLike, vendor: str | os.PathLike, cache: str | os.PathLike) -> dict[str, int]:
    """Write everything the pages sample with into `folder`; returns {file name: bytes}.

    vendor: the folder of onnxruntime-web's files; cache: where exported graphs are kept between builds.
    """
    folder, vendor, cache = Path(folder), Path(vendor), Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    catalogue = {"runtime": RUNTIME_VERSION, "cascade": list(shipped(CASCADE).stages), "models": {}}
    for name in NETWORKS:
        graph, catalogue["models"][name] = _export(name, cache)
        shutil.copyfile(graph, folder / f"{name}.onnx")
        _carrier(folder, f"{name}.onnx", graph.read_bytes())
    for name in RUNTIME:
        data = _runtime_file(vendor, name)
        (folder / name).write_bytes(data)
        if name in CARRIED:
            _carrier(folder, name, data)
    (folder / "models.js").write_text(f"tinydiff._catalogue({json.dumps(catalogue, indent=1)});\n")
    return {path.name: path.stat().st_size for path in sorted(folder.iterdir())}


# -- the Sphinx extension ------------------------------------------------------------------------------

def _build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    # Sphinx copies static files only when some page is rewritten: an edit of the scripts alone would not
    # reach the book.
    for name in SCRIPTS + STYLES:
        shutil.copyfile(Path(app.confdir) / "book" / "_static" / name, out / "_static" / name)
    write_assets(out / "_static" / ASSETS, Path(app.confdir) / "book" / "vendor" / "onnxruntime-web",
                 out.parent / ".tinydiff-onnx")


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    """Each script once: under Jupyter Book 1.x, sphinx-thebe registers its inline settings twice, and the
    second `const THEBE_JS_URL` is a SyntaxError in every page's console."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # An inline script is registered once with filename None and once with "": the same script.
        key = (getattr(script, "filename", script) or "", repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app) -> dict:
    """Sphinx entry point: every page loads tinydiff.js and its widgets (small; the runtime and networks
    load only when a live widget samples), and the build writes the assets."""
    for name in SCRIPTS:
        app.add_js_file(name)
    for name in STYLES:
        app.add_css_file(name)
    app.connect("html-page-context", _unique_scripts, priority=900)  # after the handlers that add scripts
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# -- a headless browser, for the tests and the bench ------------------------------------------------------

def chromium(timeout_s: float = 300.0):
    """Headless Chromium under selenium (Debian's `chromium` and `chromium-driver`; nothing is downloaded).

    The binary and the driver are $CHROMIUM and $CHROMEDRIVER, else `chromium` and `chromedriver` on the PATH.
    Console messages are kept (`driver.get_log("browser")`).
    """
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise ConfigError("the browser checks need selenium: pip install -r requirements.txt") from None
    binary = os.environ.get("CHROMIUM") or shutil.which("chromium")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not binary or not driver:
        raise ConfigError("headless Chromium is missing: apt-get install chromium chromium-driver (or set "
                          "$CHROMIUM and $CHROMEDRIVER)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        options.add_argument(flag)
    options.binary_location = binary
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.set_script_timeout(timeout_s)
    return browser


def call(browser, expression: str, *arguments):
    """Await a JavaScript expression (a Promise is awaited) in the page; arguments are `args[0]`, ...
    A rejected Promise raises RuntimeError with its message."""
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1], args = Array.from(arguments).slice(0, -1);"
        f"Promise.resolve().then(() => ({expression}))"
        ".then((value) => done({value}), (error) => done({error: String(error && error.message || error)}));",
        *arguments)
    if "error" in result:
        raise RuntimeError(result["error"])
    return result.get("value")


def bare_page(folder: str | os.PathLike, static: str | os.PathLike) -> Path:
    """A bare page in `folder` that loads the book's scripts from `static` (a copy of _static/ with the
    assets written): what tests and the bench drive without building the book."""
    folder, static = Path(folder), Path(static)
    page = folder / "page.html"
    relative = os.path.relpath(static, folder)
    page.write_text("<!doctype html><html><head><meta charset='utf-8'>"
                    f"<script src='{relative}/tinydiff.js'></script>"
                    f"<script src='{relative}/tinydiff-widgets.js'></script></head><body></body></html>\n")
    return page


def browser_sample(browser, noise=None, **request):
    """`window.tinydiff.sample(request)` in the page -> (n, 15, 28, 28) float32 tensor. noise: the initial
    noise as a tensor, or {"draw": tensor, "write": tensor} for the cascade (None: the page's own seeded noise)."""
    import torch

    if isinstance(noise, dict):
        noise = {key: value.flatten().tolist() for key, value in noise.items()}
    elif noise is not None:
        noise = noise.flatten().tolist()
    result = call(browser, """(async () => {
        const request = Object.assign({}, args[0]), noise = args[1];
        if (noise) request.noise = Array.isArray(noise) ? Float32Array.from(noise) :
            {draw: Float32Array.from(noise.draw), write: Float32Array.from(noise.write)};
        const videos = await tinydiff.sample(request);
        return {shape: videos.shape, data: Array.from(videos.data)};
    })()""", request, noise)
    return torch.tensor(result["data"], dtype=torch.float32).view(*result["shape"])


def python_noise(shape, seed: int):
    """The initial noise a Python pipeline draws for `seed` (`sampling.noise_generator`, then randn)."""
    import torch

    from .sampling import noise_generator

    return torch.randn(shape, generator=noise_generator(seed))


# -- the bench's section ------------------------------------------------------------------------------------

WEB_HEADING = "## In the reader's browser"
# The targets (issue 27), headless Chromium on 2 cores, WASM.
TARGETS = {"cascade": "<= 3", "noising": "<= 50", "weight": "<= 15", "iou": ">= 0.99"}


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f}"


def bench_section(progress=print, repeats: int = 3) -> list[str]:
    """Speeds, page weights and agreement with PyTorch of the live widgets, in headless Chromium from disk."""
    import statistics
    import tempfile

    from .metrics import frame_iou
    from .pipeline import pretrained
    from .report import markdown_table

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copytree(root / "book" / "_static", folder / "_static")
        sizes = write_assets(folder / "_static" / ASSETS, root / "book" / "vendor" / "onnxruntime-web", folder / "cache")
        packed = {name: len(gzip.compress((folder / "_static" / ASSETS / name).read_bytes(), compresslevel=6))
                  for name in sizes}
        browser = chromium()
        try:
            browser.get(bare_page(folder, folder / "_static").as_uri())
            version = browser.capabilities.get("browserVersion", "?")
            progress("browser: the cascade, four videos ...")
            timed = ("(async () => { const t0 = performance.now(); await tinydiff.sample(args[0]);"
                     " return (performance.now() - t0) / 1000; })()")
            cascade = {"model": "cascade", "n": 4, "digit": 7, "steps": 20}
            first = call(browser, timed, cascade)
            cascade_s = statistics.median(call(browser, timed, {**cascade, "seed": i + 1}) for i in range(repeats))
            writer = {"model": "writer", "n": 4, "digit": 7, "guidance": 2.0, "steps": 10}
            call(browser, timed, writer)  # its network loaded
            writer_s = statistics.median(call(browser, timed, {**writer, "seed": i + 1}) for i in range(repeats))
            progress("browser: forward noising ...")
            # The widget itself, its slider moved 200 times: noising and painting the 15 frames, timed together
            # (a page that is not cross-origin isolated reads the clock to 0.1 ms only).
            noising_ms = call(browser, """(() => {
                const root = document.createElement('div');
                root.className = 'tinydiff-live';
                root.dataset.widget = 'noising';
                root.dataset.digit = '0'.repeat(80) + 'f'.repeat(36) + '0'.repeat(80);
                document.body.appendChild(root);
                tinydiff.widgets.start();
                const slider = root.querySelector('input[type=range]'), t0 = performance.now();
                for (let i = 0; i < 200; i++) {
                    slider.value = (i * 5) % 1000;
                    slider.dispatchEvent(new Event('input'));
                }
                return (performance.now() - t0) / 200;
            })()""")
            progress("browser: against PyTorch, same noise ...")
            iou = {}
            shape = (4, 1, 15, 28, 28)
            expected = pretrained("writer", device="cpu").generate(4, digit=7, guidance=2.0, steps=10, seed=0)
            iou["writer"] = frame_iou(
                browser_sample(browser, python_noise(shape, 0), **writer), expected).min().item()
            expected = pretrained("cascade", device="cpu").generate(4, digit=3, steps=20, seed=0)
            noise = {"draw": python_noise((4, 1, 1, 28, 28), 0), "write": python_noise(shape, 0)}
            iou["cascade"] = frame_iou(
                browser_sample(browser, noise, model="cascade", n=4, digit=3, steps=20), expected).min().item()
        finally:
            browser.quit()
    runtime = list(RUNTIME)
    weights = []
    for widget, names in WIDGETS.items():
        files = (runtime + ["models.js"] if names else []) + [f"{name}.onnx" for name in names]
        weights.append([f"{widget}: " + (", ".join(names) if len(names) < 3 else f"{len(names)} networks")
                        if names else f"{widget}: computed in the page",
                        _megabytes(sum(sizes[f] for f in files)), _megabytes(sum(packed[f] for f in files)),
                        TARGETS["weight"]])
    return [WEB_HEADING, "",
            f"The live widgets' sampler (book/_static/tinydiff.js) on onnxruntime-web {RUNTIME_VERSION} (WebAssembly, "
            f"one thread: a page from disk is not cross-origin isolated), in headless Chromium {version} on the same "
            f"machine, the page opened from disk. Seconds are medians of {repeats} runs after the networks loaded.", "",
            *markdown_table(["measure", "value", "target"], [
                ["cascade, 4 videos: DDIM-20 draw, DDIM-10 write (s)", f"{cascade_s:.2f}", TARGETS["cascade"]],
                ["the same, first run: loading runtime, networks (s)", f"{first:.2f}", ""],
                ["writer, 4 videos: DDIM-10, guidance 2 (s)", f"{writer_s:.2f}", ""],
                ["forward-noising slider update, 15 frames painted (ms)", f"{noising_ms:.2f}", TARGETS["noising"]],
                *[[f"frame IoU with PyTorch, same noise: {name}", f"{value:.4f}", TARGETS["iou"]]
                  for name, value in iou.items()]], "lrl"), "",
            "Added page weight, loaded only when a widget first samples (MB; over http the page fetches the files "
            "themselves, from disk their base64 forms, a third larger). Every page also loads the widgets' two scripts and style, "
            f"{sum((root / 'book' / '_static' / name).stat().st_size for name in SCRIPTS + STYLES) / 1e3:.0f} kB:", "",
            *markdown_table(["widget (networks)", "files", "gzip transfer", "target"], weights, "lrrl"), ""]
