"""The GPU benchmark: big models, a ~100K-token text, upstream ``process()`` and our engine in exact
and fast mode on the same GPU.

Prints end-to-end and per-stage seconds and ``torch.cuda.max_memory_allocated()`` for each run,
checks that our exact output is byte-identical to upstream's on the same device (the one identity
that holds on a GPU), and reports how far fast mode agrees with exact (``engine.agreement``).
Exit status 1 when exact mode and upstream differ.

    scripts/gpu-benchmark.sh                    # on the GPU host (docs/GPU_VALIDATION.md)
    python -m benchmarks.gpu_benchmark --dry-run  # anywhere: tiny models, a short text, on the CPU

``--dry-run`` exercises every code path on a CPU (fast mode then autocasts on the CPU instead of
CUDA) so the script is known to work before GPU time is spent on it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.engine_vs_upstream import compare_files, ensure_models
from benchmarks.fast_vs_exact import OPTIONS, benchmark_texts, warm_up
from benchmarks.upstream import UpstreamRun, run_upstream_batch
from booknlp_api.config import Settings
from booknlp_api.engine.agreement import compare_folders
from booknlp_api.engine.precision import FastMode
from booknlp_api.engine.service import NLPService

CHARS_PER_TOKEN = 4.6
"""Characters per spaCy token in the benchmark novels (measured: 690K characters, 150K tokens)."""


def book_text(tokens: int, texts: list[Path]) -> str:
    """About ``tokens`` tokens: the benchmark novels joined, cut at a paragraph break."""
    want = int(tokens * CHARS_PER_TOKEN)
    text = ""
    while len(text) < want:
        text += "".join(path.read_text(encoding="utf-8-sig") + "\n\n" for path in texts)
    cut = text.rfind("\n\n", 0, want)
    return text[: cut if cut > want * 0.8 else want]


def _cuda_peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _cuda_peak(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


def run_ours(service: NLPService, text: str, out: Path, precision: str) -> dict[str, Any]:
    """One timed analysis (after a warm-up that loads this precision's components)."""
    warm_up(service, out, precision)
    _cuda_peak_reset(service.device)
    started = time.perf_counter()
    analysis = service.analyze(text, out_dir=out, book_id="book", precision=precision)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tokens": analysis.token_count, "stages": analysis.timings,
            "cuda_max_memory_allocated": _cuda_peak(service.device), "device": analysis.device}


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**30:.2f} GiB"


def report(runs: dict[str, dict[str, Any]], tokens: int) -> None:
    print(f"\n{tokens:,} tokens")
    for name, run in runs.items():
        seconds = run.get("seconds", run.get("process_s"))
        stages = ", ".join(f"{k} {v:.1f}" for k, v in run.get("stages", {}).items())
        print(f"  {name:16}{seconds:8.1f} s  {tokens / seconds:8.0f} tok/s  peak GPU memory "
              f"{_gib(run.get('cuda_max_memory_allocated'))}")
        print(f"  {'':16}stages: {stages}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small", "big"], help="default: big (dry run: tiny)")
    parser.add_argument("--tokens", type=int, help="text length in tokens; default 100000 (dry run: 400)")
    parser.add_argument("--text", type=Path, action="append", help="texts to join (default: benchmark texts)")
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "booknlp-bench-models")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, tiny models, a short text")
    parser.add_argument("--skip-upstream", action="store_true", help="no upstream run, no identity check")
    parser.add_argument("--fast", choices=sorted(OPTIONS), default="shipped",
                        help="the fast mode measured: the shipped one, or a candidate option (default: shipped)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/gpu_benchmark.json"))
    args = parser.parse_args(argv)
    size = args.size or ("tiny" if args.dry_run else "big")
    tokens = args.tokens or (400 if args.dry_run else 100_000)
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device visible to torch; use --dry-run to exercise the script on the CPU", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda"
    fast_mode = OPTIONS[args.fast]
    if args.dry_run:
        # No CUDA here: autocast on the CPU to the dtype the mode would use on the GPU (float16 if none).
        fast_mode = FastMode(half_cpu=fast_mode.half_cuda or torch.float16)

    ensure_models(args.models_dir, size, 0)
    settings = Settings(models_dir=args.models_dir, model=size, device=device)
    work = Path(tempfile.mkdtemp(prefix="booknlp-gpu-"))
    text = book_text(tokens, args.text or benchmark_texts())
    (work / "book.txt").write_text(text, encoding="utf-8")
    print(f"device {device}{' (' + torch.cuda.get_device_name(0) + ')' if device == 'cuda' else ''}, "
          f"{size} models (synthetic, random weights), text {len(text):,} characters; work folder {work}",
          flush=True)

    runs: dict[str, dict[str, Any]] = {}
    service = NLPService(settings, fast_mode=fast_mode)
    started = time.perf_counter()
    service.load(precision="exact")
    load_s = time.perf_counter() - started
    runs["ours exact"] = run_ours(service, text, work / "exact", "exact")
    print(f"ours exact: {runs['ours exact']['seconds']:.1f} s (model load {load_s:.1f} s)", flush=True)
    runs["ours fast"] = run_ours(service, text, work / "fast", "fast")
    print(f"ours fast: {runs['ours fast']['seconds']:.1f} s ({', '.join(fast_mode.describe(service.device))})",
          flush=True)
    identical: dict[str, bool] | None = None
    if not args.skip_upstream:
        # A fresh process, like a user's script: upstream picks CUDA itself when it is there.
        [runs["upstream"]] = run_upstream_batch(
            [UpstreamRun(work / "book.txt", args.models_dir / size, work / "upstream")],
            spacy_model=service.spacy_model, cache_dir=args.models_dir / ".hub")
        if "error" in runs["upstream"]:
            print(runs["upstream"]["error"], file=sys.stderr)
            return 1
        identical = compare_files(work / "exact", work / "upstream")
    agreement = compare_folders(work / "exact", work / "fast", "book").values()

    count = runs["ours exact"]["tokens"]
    report(runs, count)
    if "upstream" in runs:
        up = runs["upstream"]["process_s"]
        print(f"speed vs upstream: exact {up / runs['ours exact']['seconds']:.2f}x, "
              f"fast {up / runs['ours fast']['seconds']:.2f}x")
    print("fast vs exact agreement: " + ", ".join(f"{k} {v:.4f}" for k, v in agreement.items()))
    if identical is not None:
        same = all(identical.values())
        print(f"ours exact vs upstream on {device}, native files ({len(identical)}): "
              + ("byte-identical" if same else "DIFFERENT: " + ", ".join(k for k, v in identical.items() if not v)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "device": device, "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None, "size": size,
        "tokens": count, "chars": len(text), "load_s": load_s, "runs": runs, "identical": identical,
        "fast": args.fast, "fast_agreement": agreement, "fast_changes": fast_mode.describe(service.device),
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()},
    }, indent=2))
    print(f"figures written to {args.json}")
    return 0 if identical is None or all(identical.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
