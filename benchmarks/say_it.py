"""What the page "Say it" (book/say_it.md) costs a reader: its weight and its time to the first result.

    make book && .venv/bin/python benchmarks/say_it.py [--repeats 3] [--seconds 3]

Prints, for the built site (``_build/html``):

* the weight of every file the page adds (``book/say_it/``: the two ONNX graphs,
  onnxruntime-web's wasm build, the page's script and style, the examples), as served and
  gzip-compressed (what a server that compresses sends);
* in Debian's Chromium (headless, one fresh profile per run, so nothing is cached), served
  from 127.0.0.1: the seconds from navigation to the recogniser's being ready (runtime and
  graphs fetched, compiled and loaded), the seconds to transcribe a ``--seconds``-long
  utterance for the first time (a test speaker's recording, padded with silence to that
  length: front end, encoder and every decoder step, as the page runs them) and again once
  warm, and their sum: the time to the first result.

The best and the median of ``--repeats`` runs are printed. Nothing is asserted: these are
measurements, and they depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import functools
import gzip
import os
import statistics
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
FOLDER = SITE / "book" / "say_it"
CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if Path(p).exists()), "chromium")
RECORDING = ROOT / "data" / "wav" / "real_5_digits.wav"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def weights() -> list[tuple[str, int, int]]:
    """(file, bytes, gzip bytes) of every file under the page's folder."""
    return [(str(p.relative_to(FOLDER)), p.stat().st_size, len(gzip.compress(p.read_bytes(), 6)))
            for p in sorted(FOLDER.rglob("*")) if p.is_file()]


def utterance(seconds: float) -> np.ndarray:
    import soundfile
    samples, rate = soundfile.read(RECORDING, dtype="float32")
    assert rate == 8000
    n = int(seconds * rate)
    out = np.zeros(max(n, len(samples)), dtype=np.float32)
    start = (len(out) - len(samples)) // 2
    out[start:start + len(samples)] = samples
    return out


def one_run(playwright, site: str, samples: np.ndarray) -> dict:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                         "--disable-background-networking", "--disable-component-update"])
    try:
        page = browser.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site) else route.abort())
        started = time.perf_counter()
        page.goto(site + "book/say_it.html")
        page.wait_for_function("window.sayIt && window.sayIt.loadSeconds !== null", timeout=60_000, polling=10)
        ready = time.perf_counter() - started
        ready_in_page = page.evaluate("performance.now() / 1000")
        first = page.evaluate("s => window.sayIt.transcribe(s)", samples.tolist())
        warm = [page.evaluate("s => window.sayIt.transcribe(s)", samples.tolist())["seconds"] for _ in range(3)]
        return {"ready": ready, "ready_in_page": ready_in_page, "first": first["seconds"], "warm": min(warm),
                "text": first["text"], "steps": first["steps"]}
    finally:
        browser.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the utterance transcribed")
    args = parser.parse_args(argv)
    if not (SITE / "book" / "say_it.html").is_file():
        print("benchmarks/say_it.py: the site is not built: run `make book` first.", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    rows = weights()
    width = max(len(name) for name, _, _ in rows)
    print(f"page weight, {FOLDER.relative_to(ROOT)}/:")
    for name, size, packed in rows:
        print(f"  {name:<{width}}  {size / 1e6:7.3f} MB  ({packed / 1e6:6.3f} MB gzip)")
    print(f"  {'total':<{width}}  {sum(r[1] for r in rows) / 1e6:7.3f} MB  ({sum(r[2] for r in rows) / 1e6:6.3f} MB gzip)")

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{server.server_address[1]}/"
    samples = utterance(args.seconds)
    runs = []
    with sync_playwright() as playwright:
        for _ in range(args.repeats):
            runs.append(one_run(playwright, site, samples))
    server.shutdown()
    print(f"\nChromium {CHROMIUM}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"{len(samples) / 8000:.2f} s utterance, heard {runs[0]['text']!r} ({runs[0]['steps']} encoder steps); "
          f"{args.repeats} cold runs (best, median):")
    for key, what in [("ready", "navigation to ready (runtime and graphs loaded)"),
                      ("first", "first transcription"),
                      ("warm", "a transcription once warm"),
                      ("total", "time to the first result (ready + first)")]:
        values = [r["ready"] + r["first"] if key == "total" else r[key] for r in runs]
        print(f"  {what:<45} {min(values):6.3f} s  {statistics.median(values):6.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
