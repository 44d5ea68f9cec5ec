"""Fast mode's coref-only int8 against exact: the coref stage alone, twice on the same book.

Int8 quantisation of the coref BERT changes the coref stage only: every earlier stage computes what
exact mode computes. So each text runs the stages up to gender once, in exact mode, and then coref
twice from copies of that state, once with exact's coref component and once with the int8 one, and
compares the two outputs (``booknlp_api.engine.agreement``): half the work of two whole runs, the
same agreement. Prints per text the agreements and the coref stage's seconds (wall and process CPU).

    python -m benchmarks.coref_int8_agreement --size small benchmarks/texts/emma.txt
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.engine_vs_upstream import ensure_models
from booknlp_api.config import Settings
from booknlp_api.engine.agreement import compare_folders
from booknlp_api.engine.chatter import captured_stdout
from booknlp_api.engine.native import write_native
from booknlp_api.engine.pipeline import parse_pipeline
from booknlp_api.engine.precision import FastMode
from booknlp_api.engine.service import NLPService, normalize_text
from booknlp_api.engine.stages import STAGES, Book, resolve_coref


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", type=Path, nargs="+")
    parser.add_argument("--size", choices=["tiny", "small", "big"], default="small")
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "booknlp-bench-models")
    args = parser.parse_args(argv)
    ensure_models(args.models_dir, args.size, 0)
    settings = Settings(models_dir=args.models_dir, model=args.size)
    pipeline = parse_pipeline(None)
    exact_service = NLPService(settings)
    exact = exact_service.load(precision="exact")
    int8 = NLPService(settings, fast_mode=FastMode(int8_coref_cpu=True)).load(precision="fast")
    spacy = exact_service._spacy_pipeline()
    work = Path(tempfile.mkdtemp(prefix="booknlp-coref8-"))
    for path in args.texts:
        book = Book(text=normalize_text(path.read_text(encoding="utf-8-sig")))
        with torch.no_grad(), captured_stdout():
            for stage in STAGES:
                if stage.run is not resolve_coref:
                    stage.run(book, exact, pipeline, spacy)
            seconds = {}
            for name, parts in (("exact", exact), ("coref8", int8)):
                copied = copy.deepcopy(book)
                wall, cpu = time.perf_counter(), time.process_time()
                resolve_coref(copied, parts, pipeline, spacy)
                seconds[name] = (time.perf_counter() - wall, time.process_time() - cpu)
                write_native(copied, pipeline, work / path.stem / name, "book")
        found = compare_folders(work / path.stem / "exact", work / path.stem / "coref8", "book").values()
        print(f"{path.name}: {len(book.tokens):,} tokens; coref stage wall/CPU s: "
              + ", ".join(f"{n} {w:.1f}/{c:.1f}" for n, (w, c) in seconds.items()), flush=True)
        print("  " + ", ".join(f"{k} {v:.4f}" for k, v in found.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
