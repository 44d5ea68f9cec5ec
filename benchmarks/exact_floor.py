"""How fast exact mode could be at best: its time in the kernels whose floats it must keep.

Exact mode must write upstream's bytes, so it runs upstream's BERT matrix products at every position that
what is read depends on, upstream's attention on upstream's padded shapes and upstream's LSTMs, with the
same kernels (any other kernel or shape changes the last bits). This benchmark runs our engine in exact mode
on one text twice in one process: once plain (the stage seconds), then with torch's profiler on, one
profile per stage. It prints, per stage, the seconds in those kernels (self time of the matrix products,
the attention and the LSTMs) and in everything else, and the floor: the run's seconds if everything else
took no time. With ``--upstream`` it also runs upstream ``process()`` on the same text (a fresh process) and
prints the highest speed-up over upstream that floor allows. Everything else includes work that must be
done too (GELU, LayerNorm, spaCy, CRFs), so the real limit lies below the printed one.

    python -m benchmarks.exact_floor --size big --text benchmarks/texts/pride_and_prejudice.txt --chars 55000 --upstream
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.corpus import text_path
from benchmarks.engine_vs_upstream import STAGE_MAP, add_run_arguments, ensure_models
from benchmarks.upstream import UpstreamRun, run_upstream_batch
from booknlp_api.config import Settings
from booknlp_api.engine.progress import StageProgress
from booknlp_api.engine.service import NLPService

KERNELS = ("matrix products", "attention", "LSTMs")
_PRODUCTS = frozenset({"aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::addbmm"})


def kernel_of(op: str) -> str | None:
    """Which kept kernel a profiled aten op is, if any."""
    if op in _PRODUCTS:
        return "matrix products"
    if op.startswith("aten::_scaled_dot_product"):
        return "attention"
    if "lstm" in op or "rnn" in op:
        return "LSTMs"
    return None


class StageProfiles:
    """A progress callback that profiles each stage on its own (stages change in the analysing thread)."""

    def __init__(self) -> None:
        self.kernel_seconds: dict[str, dict[str, float]] = {}
        self._stage = ""
        self._profile: profile | None = None

    def __call__(self, progress: StageProgress) -> None:
        if progress.stage != self._stage:
            self.close()
            self._stage = progress.stage
            self._profile = profile(activities=[ProfilerActivity.CPU])
            self._profile.start()

    def close(self) -> None:
        if self._profile is None:
            return
        self._profile.stop()
        seconds = dict.fromkeys(KERNELS, 0.0)
        for event in self._profile.key_averages():
            kernel = kernel_of(event.key)
            if kernel is not None:
                seconds[kernel] += event.self_cpu_time_total / 1e6
        self.kernel_seconds[self._stage] = seconds
        self._profile = None


def measure(service: NLPService, text: str) -> dict[str, Any]:
    """One plain exact run, then one profiled: stage seconds of each and kept-kernel seconds per stage."""
    with tempfile.TemporaryDirectory() as warm:
        service.analyze(text[:2000], out_dir=Path(warm), precision="exact")
    gc.collect()
    gc.freeze()  # as a worker does once its models are loaded
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        plain = service.analyze(text, out_dir=Path(out), precision="exact")
        plain_s = time.perf_counter() - started
    profiles = StageProfiles()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        profiled = service.analyze(text, out_dir=Path(out), precision="exact", progress=profiles)
        profiles.close()
        profiled_s = time.perf_counter() - started
    return {"tokens": plain.token_count, "plain_s": plain_s, "plain_stages": plain.timings,
            "profiled_s": profiled_s, "profiled_stages": profiled.timings, "kernels": profiles.kernel_seconds}


def floor_rows(figures: dict[str, Any]) -> list[tuple[str, float, dict[str, float], float]]:
    """Per stage: (stage, profiled seconds, kept-kernel seconds, floor share of the plain run's seconds)."""
    rows = []
    for stage, seconds in figures["profiled_stages"].items():
        kernels = figures["kernels"].get(stage, dict.fromkeys(KERNELS, 0.0))
        kept = min(sum(kernels.values()), seconds)
        plain = figures["plain_stages"].get(stage, seconds)
        rows.append((stage, seconds, kernels, plain * kept / seconds if seconds else 0.0))
    return rows


def report(figures: dict[str, Any]) -> None:
    """Print ``figures`` (with ``floor_s``, and ``upstream_s`` and ``upstream_stages`` when upstream ran)."""
    print(f"\nexact mode, {figures['tokens']} tokens: plain run {figures['plain_s']:.1f} s, "
          f"profiled run {figures['profiled_s']:.1f} s (with the profiler's bookkeeping between stages)")
    print(f"{'stage':14}{'profiled s':>12}" + "".join(f"{k:>17}" for k in KERNELS) + f"{'else':>10}{'floor s':>10}")
    rows = floor_rows(figures)
    for stage, seconds, kernels, stage_floor in rows:
        rest = max(seconds - sum(kernels.values()), 0.0)
        print(f"{stage:14}{seconds:12.2f}" + "".join(f"{kernels[k]:17.2f}" for k in KERNELS)
              + f"{rest:10.2f}{stage_floor:10.2f}")
    floor = figures["floor_s"]
    plain_stages = sum(figures["plain_stages"].values())
    print(f"floor (the plain run's stages scaled to their kept-kernel share): {floor:.1f} s of {plain_stages:.1f} s")
    if "upstream_s" not in figures:
        return
    up_s, up_stages = figures["upstream_s"], figures["upstream_stages"]
    print(f"upstream process(): {up_s:.1f} s; ours {figures['plain_s']:.1f} s = {up_s / figures['plain_s']:.2f}x; "
          f"at the floor at most {up_s / floor:.2f}x")
    for label, up, ours in STAGE_MAP:
        mine = [row[3] for row in rows if row[0] in ours]
        if up in up_stages and mine:
            print(f"  {label:16} upstream {up_stages[up]:7.2f} s, floor {sum(mine):7.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--upstream", action="store_true", help="also time upstream process() on the same text")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/exact_floor.json"))
    args = parser.parse_args(argv)
    source = args.text or text_path("pride_and_prejudice.txt")
    ensure_models(args.models_dir, args.size, args.seed)
    text = source.read_text(encoding="utf-8-sig")[: args.chars]
    service = NLPService(Settings(models_dir=args.models_dir, model=args.size))
    service.load(args.size)
    figures = measure(service, text)
    if args.upstream:
        with tempfile.TemporaryDirectory(prefix="booknlp-floor-") as work:
            text_file = Path(work) / "text.txt"
            text_file.write_text(text, encoding="utf-8")
            [upstream] = run_upstream_batch([UpstreamRun(text_file, args.models_dir / args.size, Path(work) / "up")],
                                            spacy_model=service.spacy_model, cache_dir=args.models_dir / ".hub")
        if "error" in upstream:
            print(upstream["error"], file=sys.stderr)
            return 1
        figures.update(upstream_s=upstream["process_s"], upstream_stages=upstream["stages"])
    figures["floor_s"] = sum(row[3] for row in floor_rows(figures))
    report(figures)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"size": args.size, "text": str(source), "chars": args.chars,
                                     "threads": torch.get_num_threads(), **figures}, indent=2))
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
