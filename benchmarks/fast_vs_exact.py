"""Fast mode against exact mode: speed and agreement, per fast option, on every benchmark text.

For each text, one exact run, then one run per fast option (each option on its own, plus the shipped
fast mode), all in this process on the same model files and device. Prints per text and option the
speed ratio against exact (and against upstream ``process()`` with ``--upstream``), and the agreement
with exact: entity spans+types F1, supersense F1, event F1, quote speaker accuracy, coreference
B-cubed F1 and character-list F1 (``booknlp_api.engine.agreement``). An option may ship only while
every agreement stays >= 98% on every text (docs/PERFORMANCE.md).

    python -m benchmarks.fast_vs_exact --size small --chars 100000
    python -m benchmarks.fast_vs_exact --size small --options int8,fp16 --text ../shared/data/texts/emma.txt
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.corpus import TEXTS, text_path
from benchmarks.engine_vs_upstream import ensure_models
from benchmarks.upstream import UpstreamRun, run_upstream_batch
from booknlp_api.config import Settings
from booknlp_api.engine.agreement import compare_folders
from booknlp_api.engine.precision import FAST, TAGGER_LSTMS, FastMode
from booknlp_api.engine.service import NLPService
from booknlp_api.engine.speaker_int8 import RecheckedSpeakerForward

SHIP_AT = 0.98
"""Every agreement must reach this on every text for an option to ship."""

OPTIONS: dict[str, FastMode] = {
    "shipped": FAST,
    "int8": FastMode(int8_cpu=True),
    "fp16": FastMode(half_cuda=torch.float16, half_cpu=torch.float16),
    "bf16": FastMode(half_cuda=torch.bfloat16, half_cpu=torch.bfloat16),
    "coref8": FastMode(int8_coref_cpu=True),
    "quote8": FastMode(int8_quote_cpu=True),
    "pieces": FastMode(parse_processes=2, parse_pieces=4),
    "no-bf16": dataclasses.replace(FAST, bf16_cpu=False, bf16_lstms_cpu=()),
    "bf16-lstm": dataclasses.replace(FAST, bf16_lstms_cpu=tuple(TAGGER_LSTMS)),
    "bf16-bert": dataclasses.replace(FAST, bf16_lstms_cpu=()),
    "no-quote-fork": dataclasses.replace(FAST, quote_processes=1),
    "no-quote-length": dataclasses.replace(FAST, quote_by_length=False),
}
"""Fast options measured: on the CPU, fp16/bf16 autocast stand in for what they do on a GPU; ``no-bf16`` is what
the shipped mode does on a CPU without native bfloat16; ``bf16-bert`` the shipped mode with every tagger LSTM in
float32, ``bf16-lstm`` with all five in bfloat16; ``no-quote-fork`` with attribution in one process;
``no-quote-length`` with quote windows in upstream's batches."""

_REPO = Path(__file__).resolve().parents[1]


def benchmark_texts() -> list[Path]:
    """The project's benchmark novels (benchmarks/texts/, checksums verified)."""
    return [text_path(name) for name in sorted(TEXTS)]


def warm_up(service: NLPService, out: Path, precision: str) -> None:
    """Load ``precision``'s lazily built components outside the timing with a short analysis, then freeze the
    heap as a worker does once its models are loaded (jobs/process.py): full collections skip what is loaded."""
    service.analyze("Emma smiled. “Yes,” said Harriet.", out_dir=out.with_name(out.name + "-warm"),
                     precision=precision)  # type: ignore[arg-type]
    gc.collect()
    gc.freeze()


def timed_run(service: NLPService, text: str, out: Path, precision: str) -> dict[str, Any]:
    warm_up(service, out, precision)
    started = time.perf_counter()
    analysis = service.analyze(text, out_dir=out, precision=precision)
    return {"seconds": time.perf_counter() - started, "tokens": analysis.token_count, "stages": analysis.timings}


def measure_text(path: Path, chars: int | None, settings: Settings, options: list[str], work: Path,
                 upstream: bool) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8-sig")[:chars]
    folder = work / path.stem
    exact_service = NLPService(settings)
    exact = timed_run(exact_service, text, folder / "exact", "exact")
    del exact_service
    row: dict[str, Any] = {"text": path.name, "chars": len(text), "tokens": exact["tokens"], "exact": exact,
                           "options": {}}
    if upstream:
        (folder / "text.txt").write_text(text, encoding="utf-8")
        [theirs] = run_upstream_batch([UpstreamRun(folder / "text.txt", settings.models_dir / settings.model,
                                                   folder / "upstream")],
                                      spacy_model=NLPService(settings).spacy_model,
                                      cache_dir=settings.models_dir / ".hub")
        row["upstream"] = theirs
    for name in options:
        service = NLPService(settings, fast_mode=OPTIONS[name])
        fast = timed_run(service, text, folder / name, "fast")
        found = compare_folders(folder / "exact", folder / name, "book")
        fast["agreement"] = found.values()
        fast["speed_vs_exact"] = exact["seconds"] / fast["seconds"]
        fast["changes"] = OPTIONS[name].describe(service.device)
        forward = service.load(precision="fast").quote.model.forward
        if isinstance(forward, RecheckedSpeakerForward):  # the warm-up's windows included: a handful
            fast["quotes_rechecked"] = [forward.rechecked, forward.windows]
        if upstream and "process_s" in row["upstream"]:
            fast["speed_vs_upstream"] = row["upstream"]["process_s"] / fast["seconds"]
        row["options"][name] = fast
        del service
    return row


def report(row: dict[str, Any]) -> None:
    print(f"\n{row['text']}: {row['tokens']:,} tokens ({row['chars']:,} chars), exact {row['exact']['seconds']:.1f} s"
          + (f", upstream {row['upstream']['process_s']:.1f} s" if "process_s" in row.get("upstream", {}) else ""))
    metrics = ("entities_f1", "supersenses_f1", "events_f1", "quote_speakers", "coref_b_cubed_f1", "characters_f1")
    print(f"  {'option':9}{'seconds':>9}{'x exact':>9}{'x up':>7}" + "".join(f"{m[:10]:>12}" for m in metrics)
          + "  verdict")
    for name, fast in row["options"].items():
        agreement = fast["agreement"]
        lowest = min(agreement.values(), default=1.0)
        verdict = "ok" if lowest >= SHIP_AT else f"BELOW {SHIP_AT:.0%}"
        if not fast["changes"]:
            verdict += " (changes nothing on this device)"
        up = f"{fast['speed_vs_upstream']:7.2f}" if "speed_vs_upstream" in fast else f"{'-':>7}"
        if "quotes_rechecked" in fast:
            verdict += " (quotes rechecked in float32: {} of {})".format(*fast["quotes_rechecked"])
        print(f"  {name:9}{fast['seconds']:9.1f}{fast['speed_vs_exact']:9.2f}{up}"
              + "".join(f"{agreement.get(m, float('nan')):12.4f}" for m in metrics) + f"  {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small", "big"], default="small")
    parser.add_argument("--text", type=Path, action="append", help="a text (repeatable); default: every benchmark text")
    parser.add_argument("--chars", type=int, help="use only the first N characters of each text")
    parser.add_argument("--options", default=",".join(OPTIONS), help=f"comma-separated, of {', '.join(OPTIONS)}")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--upstream", action="store_true", help="also time upstream process() (slow)")
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "booknlp-bench-models")
    parser.add_argument("--json", type=Path, default=_REPO / "benchmarks" / "results" / "fast_vs_exact.json")
    args = parser.parse_args(argv)
    options = [name.strip() for name in args.options.split(",") if name.strip()]
    unknown = [name for name in options if name not in OPTIONS]
    if unknown:
        parser.error(f"unknown option(s) {', '.join(unknown)}; choose from {', '.join(OPTIONS)}")

    ensure_models(args.models_dir, args.size, 0)
    settings = Settings(models_dir=args.models_dir, model=args.size, device=args.device)
    work = Path(tempfile.mkdtemp(prefix="booknlp-fast-"))
    rows = []
    for path in args.text or benchmark_texts():
        rows.append(measure_text(path, args.chars, settings, options, work, args.upstream))
        report(rows[-1])
    lowest = {name: min(min(row["options"][name]["agreement"].values(), default=1.0) for row in rows)
              for name in options}
    print("\nlowest agreement over all texts: " + ", ".join(f"{n} {v:.4f}" for n, v in lowest.items()))
    print("random-weight (synthetic) models: the agreement is about decisions near ties, not linguistic quality")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "size": args.size, "chars": args.chars, "device": str(NLPService(settings).device),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "torch": torch.__version__},
        "rows": rows, "lowest_agreement": lowest,
    }, indent=2))
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
