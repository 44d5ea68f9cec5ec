"""Our engine and upstream ``BookNLP.process()`` side by side, on the same text and model files.

Prints per-stage seconds, tokens per second, model load time and peak RSS for both, checks that
every native file is byte-identical (the parity check for small and big models), and writes all
figures to a JSON file. Each side runs in a fresh process so that import, load and memory compare.

    python -m benchmarks.engine_vs_upstream --size small --text benchmarks/texts/emma.txt --chars 50000

Without ``--text`` the text is Pride and Prejudice from ``benchmarks/texts/`` (checksum verified).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.corpus import text_path
from benchmarks.upstream import UpstreamRun, run_upstream_batch

_OURS = r"""
import gc, json, resource, sys, time
from pathlib import Path
t0 = time.time()
from booknlp_api.config import Settings
from booknlp_api.engine.service import NLPService
t1 = time.time()
args = json.loads(sys.argv[1])
service = NLPService(Settings(models_dir=Path(args["models_dir"]), model=args["model"]))
service.load(args["model"])
gc.collect()
gc.freeze()  # as a worker does once its models are loaded (jobs/process.py)
t2 = time.time()
analysis = service.analyze(Path(args["text"]).read_text(encoding="utf-8"), out_dir=Path(args["out"]), book_id="book")
t3 = time.time()
print("@@RESULT@@" + json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "process_s": t3 - t2,
                                 "stages": analysis.timings, "tokens": analysis.token_count,
                                 "spacy_model": service.spacy_model,
                                 "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def run_ours(text: Path, models_dir: Path, model: str, out: Path, threads: int | None) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    if threads:
        env["BOOKNLP_TORCH_THREADS"] = str(threads)
    params = json.dumps({"text": str(text), "models_dir": str(models_dir), "model": model, "out": str(out)})
    done = subprocess.run([sys.executable, "-c", _OURS, params], env=env, capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("@@RESULT@@"))
    return json.loads(line.removeprefix("@@RESULT@@"))


def ensure_models(models_dir: Path, size: str, seed: int) -> None:
    if not (models_dir / size / "manifest.json").is_file():
        from booknlp_api.models.synthesize import synthesize

        print(f"synthesizing {size} models in {models_dir} ...", flush=True)
        synthesize(size, models_dir, seed=seed)


def compare_files(ours: Path, theirs: Path) -> dict[str, bool]:
    names = sorted({p.name for p in ours.iterdir()} | {p.name for p in theirs.iterdir()})
    return {name: (ours / name).is_file() and (theirs / name).is_file()
            and filecmp.cmp(ours / name, theirs / name, shallow=False) for name in names}


STAGE_MAP = (("parse", "spacy", ("parse",)), ("tagger", "entities", ("tagger",)), ("quotes", "quotes", ("quotes",)),
             ("attribution", "attribution", ("attribution",)), ("names", "name coref", ("names",)),
             ("gender + coref", "coref", ("gender", "coref")))
"""Our stages against upstream's printed ones (its ``coref`` timing includes the gender stage)."""


def stage_rows(ours: dict[str, Any], theirs: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(stage, upstream s, ours s) per stage, plus what each side spent outside its stages (writing files)."""
    rows = [(label, theirs["stages"].get(up, 0.0), sum(ours["stages"].get(name, 0.0) for name in names))
            for label, up, names in STAGE_MAP if up in theirs["stages"]]
    rows.append(("rest (files)", theirs["process_s"] - sum(theirs["stages"].values()),
                 ours["process_s"] - sum(v for k, v in ours["stages"].items() if k != "output")))
    return rows


def ratio(upstream_s: float, ours_s: float) -> str:
    """Tokens per second ours ÷ upstream, which on the same text is upstream's seconds ÷ ours."""
    return f"{upstream_s / ours_s:.2f}x" if ours_s > 0.005 and upstream_s > 0.005 else "-"


def report(size: str, ours: dict[str, Any], theirs: dict[str, Any], same: dict[str, bool]) -> None:
    tokens = ours["tokens"]
    print(f"\n{size} models, {tokens} tokens")
    print(f"{'':28}{'upstream':>12}{'booknlp-api':>14}{'ours/upstream':>16}")
    for label, key in (("import (s)", "import_s"), ("model load (s)", "load_s"), ("process (s)", "process_s")):
        print(f"{label:28}{theirs[key]:12.1f}{ours[key]:14.1f}")
    print(f"{'tokens / s':28}{tokens / theirs['process_s']:12.0f}{tokens / ours['process_s']:14.0f}"
          f"{ratio(theirs['process_s'], ours['process_s']):>16}")
    print(f"{'peak RSS (GiB)':28}{theirs['peak_rss_bytes'] / 2**30:12.2f}{ours['peak_rss_bytes'] / 2**30:14.2f}")
    print("per stage, seconds (ratio: tokens/s ours ÷ upstream)")
    for label, up_s, our_s in stage_rows(ours, theirs):
        print(f"  {label:26}{up_s:12.2f}{our_s:14.2f}{ratio(up_s, our_s):>16}")
    verdict = "byte-identical" if all(same.values()) else "DIFFERENT: " + ", ".join(k for k, v in same.items() if not v)
    print(f"native files ({len(same)}): {verdict}")
    print(f"whole run: {ratio(theirs['process_s'], ours['process_s'])} upstream's tokens per second, files {verdict}")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The model size, text, text length, model folder and synthesis seed of a run beside upstream."""
    parser.add_argument("--size", choices=["tiny", "small", "big"], default="small")
    parser.add_argument("--text", type=Path, help="any UTF-8 text (default: benchmarks/texts/pride_and_prejudice.txt)")
    parser.add_argument("--chars", type=int, help="use only the first N characters of the text")
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "booknlp-bench-models")
    parser.add_argument("--seed", type=int, default=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--threads", type=int, help="torch threads for both sides")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/engine_vs_upstream.json"))
    args = parser.parse_args()
    if args.text is None:
        args.text = text_path("pride_and_prejudice.txt")

    ensure_models(args.models_dir, args.size, args.seed)
    work = Path(tempfile.mkdtemp(prefix="booknlp-bench-"))
    text = work / "text.txt"
    text.write_text(args.text.read_text(encoding="utf-8-sig")[: args.chars], encoding="utf-8")
    ours = run_ours(text, args.models_dir, args.size, work / "ours", args.threads)
    [theirs] = run_upstream_batch([UpstreamRun(text, args.models_dir / args.size, work / "upstream")],
                                  spacy_model=ours["spacy_model"], cache_dir=args.models_dir / ".hub",
                                  threads=args.threads)
    if "error" in theirs:
        print(theirs["error"], file=sys.stderr)
        return 1
    same = compare_files(work / "ours", work / "upstream")
    report(args.size, ours, theirs, same)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "size": args.size, "text": str(args.text), "chars": args.chars, "tokens": ours["tokens"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "upstream": theirs, "ours": ours, "identical": same,
        "ratio": theirs["process_s"] / ours["process_s"],
        "stage_ratios": {label: up / mine if mine else None for label, up, mine in stage_rows(ours, theirs)},
    }, indent=2))
    print(f"figures written to {args.json}")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
