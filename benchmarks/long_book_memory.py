"""Peak memory of one long book: RSS sampled per stage, KB per token, and the engine's own estimate.

Builds a book of about ``--tokens`` spaCy tokens by joining the benchmark novels (repeated as
needed), runs our engine on it in a fresh process, samples that process's RSS every 50 ms from the
outside (the sampler never waits on the engine's GIL) and prints the peak per stage, the whole run's
peak and KB per token above the loaded-models baseline. ``--upstream-chars`` also runs unmodified
upstream ``process()`` on the first N characters, for a KB-per-token comparison on a shorter text.

    python -m benchmarks.long_book_memory --tokens 700000
    python -m benchmarks.long_book_memory --text benchmarks/texts/emma.txt --upstream-chars 200000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.engine_vs_upstream import ensure_models
from benchmarks.upstream import UpstreamRun, run_upstream_batch

CHARS_PER_TOKEN = 4.7
"""Characters per spaCy token in the benchmark novels (Emma: 883K characters, 189K tokens)."""

_ENGINE = r"""
import json, sys, time
from pathlib import Path
from booknlp_api.config import Settings
from booknlp_api.engine.service import NLPService
from booknlp_api.engine.memory import estimate_bytes, profile_for
args = json.loads(sys.argv[1])
say = lambda *parts: print("@@" + json.dumps(parts), flush=True)
service = NLPService(Settings(models_dir=Path(args["models_dir"]), model=args["model"]))
service.load(args["model"])
say("stage", "loaded")
text = Path(args["text"]).read_text(encoding="utf-8")
say("estimate", estimate_bytes(text, profile_for(service.loaded_models()[args["model"]].manifest)))
last = [""]
def progress(p):
    if p.stage != last[0]:
        last[0] = p.stage
        say("stage", p.stage)
analysis = service.analyze(text, out_dir=Path(args["out"]), book_id="book", progress=progress)
say("done", analysis.token_count, analysis.timings)
"""


def texts_folder() -> Path:
    here = Path(__file__).resolve().parent / "texts"
    return here if any(here.glob("*.txt")) else Path(__file__).resolve().parents[2] / "shared" / "data" / "texts"


def build_book(sources: list[Path], tokens: int) -> str:
    """About ``tokens`` spaCy tokens of the novels, joined by blank lines, repeated as needed."""
    novels = [path.read_text(encoding="utf-8-sig").strip() for path in sources]
    wanted = int(tokens * CHARS_PER_TOKEN)
    parts: list[str] = []
    size = 0
    while size < wanted:
        novel = novels[len(parts) % len(novels)]
        parts.append(novel[: wanted - size])
        size += len(parts[-1]) + 2
    return "\n\n".join(parts) + "\n"


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_engine(text: Path, models_dir: Path, model: str, out: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    params = json.dumps({"text": str(text), "models_dir": str(models_dir), "model": model, "out": str(out)})
    child = subprocess.Popen([sys.executable, "-c", _ENGINE, params], env=env, stdout=subprocess.PIPE, text=True)
    stage = ["start-up"]
    peaks: dict[str, int] = {}
    found: dict[str, Any] = {}
    finished = threading.Event()

    def sample() -> None:
        while not finished.is_set():
            try:
                rss = rss_bytes(child.pid)
            except (OSError, ValueError):
                return
            peaks[stage[0]] = max(peaks.get(stage[0], 0), rss)
            finished.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert child.stdout is not None
    started = time.monotonic()
    for line in child.stdout:
        if line.startswith("@@"):
            kind, *values = json.loads(line[2:])
            if kind == "stage":
                # each stage's figure as soon as it ends: a long book's partial results survive an interruption
                print(f"  {stage[0]:12} peak RSS {peaks.get(stage[0], 0) / 2**30:6.2f} GiB "
                      f"(ended at {time.monotonic() - started:.0f} s)", flush=True)
                stage[0] = values[0]
            else:
                found[kind] = values
    finished.set()
    sampler.join()
    if child.wait() != 0 or "done" not in found:
        raise SystemExit(f"the engine failed (exit {child.returncode})")
    tokens, timings = found["done"]
    return {"tokens": tokens, "timings": timings, "estimate_bytes": found["estimate"][0], "stage_peaks": peaks}


def run_upstream(text: Path, chars: int, models_dir: Path, model: str, work: Path) -> dict[str, Any]:
    short = work / "upstream.txt"
    short.write_text(text.read_text(encoding="utf-8")[:chars], encoding="utf-8")
    [outcome] = run_upstream_batch([UpstreamRun(short, models_dir / model, work / "upstream")],
                                   cache_dir=models_dir / ".hub")
    if "error" in outcome:
        raise SystemExit(outcome["error"])
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=700_000, help="book length to build (about)")
    parser.add_argument("--text", type=Path, help="use this text as it is instead of building a book")
    parser.add_argument("--size", choices=["tiny", "small", "big"], default="small")
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "booknlp-bench-models")
    parser.add_argument("--upstream-chars", type=int, help="also run upstream on the first N characters")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/long_book_memory.json"))
    args = parser.parse_args()

    ensure_models(args.models_dir, args.size, 0)
    work = Path(tempfile.mkdtemp(prefix="booknlp-memory-"))
    book = work / "book.txt"
    if args.text:
        book.write_text(args.text.read_text(encoding="utf-8-sig"), encoding="utf-8")
    else:
        book.write_text(build_book(sorted(texts_folder().glob("*.txt")), args.tokens), encoding="utf-8")
    started = time.monotonic()
    ours = run_engine(book, args.models_dir, args.size, work / "ours")
    ours["seconds"] = time.monotonic() - started
    peaks = ours["stage_peaks"]
    base = peaks.get("loaded", 0)
    peak = max(peaks.values())
    tokens = ours["tokens"]
    print(f"{args.size} models, {tokens} tokens, {ours['seconds']:.0f} s")
    for name, value in peaks.items():
        print(f"  {name:12} peak RSS {value / 2**30:6.2f} GiB")
    print(f"peak RSS {peak / 2**30:.2f} GiB; {(peak - base) / tokens / 1024:.1f} KB/token above the "
          f"{base / 2**30:.2f} GiB loaded baseline; estimate {ours['estimate_bytes'] / 2**30:.2f} GiB")
    figures: dict[str, Any] = {"size": args.size, "ours": ours, "peak_rss_bytes": peak, "loaded_rss_bytes": base}
    if args.upstream_chars:
        theirs = run_upstream(book, args.upstream_chars, args.models_dir, args.size, work)
        figures["upstream"] = theirs
        print(f"upstream on the first {args.upstream_chars} characters: peak RSS "
              f"{theirs['peak_rss_bytes'] / 2**30:.2f} GiB")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
