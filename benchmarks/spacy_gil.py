"""How long spaCy's parse keeps every other Python thread waiting (it holds the GIL), step by step.

A probe thread sleeps 1 ms in a loop and records the gap between its wake-ups while the main thread
runs spaCy the way upstream does (``spacy.load(model, disable=["ner"])``, then ``nlp(text)``); a gap
as long as a step means that step never let go of Python's lock. A pure-Python busy loop first shows
the interpreter's own switching (5 ms) plus whatever the machine's load adds; the CPU seconds of each
step (its thread's) tell how long it would hold the lock on an idle machine.

    python -m benchmarks.spacy_gil [--text FILE] [--chars N]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import spacy

from benchmarks.corpus import text_path
from booknlp_api.config import resolve_spacy_model


def _probe(stop: threading.Event, gaps: list[float]) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


def measure(label: str, work: Callable[[], Any]) -> Any:
    stop = threading.Event()
    gaps: list[float] = []
    probe = threading.Thread(target=_probe, args=(stop, gaps))
    probe.start()
    started, cpu = time.perf_counter(), time.thread_time()
    value = work()
    elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
    stop.set()
    probe.join()
    gaps.sort()
    print(f"{label}: {elapsed:.2f} s ({cpu:.2f} s CPU); probe gaps median {gaps[len(gaps) // 2] * 1000:.1f} ms, "
          f"max {gaps[-1] * 1000:.0f} ms, {sum(gap > 0.1 for gap in gaps)} over 100 ms", flush=True)
    return value


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, help="any UTF-8 text (default: benchmarks/texts/the_call_of_the_wild.txt)")
    parser.add_argument("--chars", type=int, help="use only the first N characters")
    args = parser.parse_args()
    path = args.text or text_path("the_call_of_the_wild.txt")
    text = path.read_text(encoding="utf-8-sig")[: args.chars]
    nlp = spacy.load(resolve_spacy_model(None), disable=["ner"])
    nlp.max_length = len(text) + 1
    measure("pure-Python busy loop, 5 s", lambda: _busy(5))
    measure(f"nlp(text), {len(text):,} characters of {path.name}", lambda: nlp(text))
    doc = measure("  its tokenizer alone", lambda: nlp.tokenizer(text))
    for name, component in nlp.pipeline:
        doc = measure(f"  then {name}", lambda component=component, doc=doc: component(doc))


if __name__ == "__main__":
    main()
