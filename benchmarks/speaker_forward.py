"""Speaker attribution's BERT work on a text, and upstream's ``BERTSpeakerID.forward`` against ours on it.

Runs the engine once on the text (small synthetic models: random weights, output meaningless) to
capture the speaker model's batches, prints how many word-piece positions the BERT computes against
the text's length and against the positions the scoring reads, then times upstream's forward and
ours on the same batches and model instance, alternating, and checks the scores are bit-identical.

    python -m benchmarks.speaker_forward --tokens 1000 --rounds 5
    python -m benchmarks.speaker_forward --text benchmarks/texts/the_call_of_the_wild.txt --tokens 0
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.analyze_latency import first_words
from benchmarks.corpus import text_path
from benchmarks.engine_vs_upstream import ensure_models
from booknlp_api.config import Settings
from booknlp_api.engine.bert_layer import least_rows
from booknlp_api.engine.service import NLPService
from booknlp_api.engine.speaker_forward import read_positions
from booknlp_api.models.bert import import_upstream


def capture_batches(service: NLPService, text: str) -> tuple[Any, list[tuple[Any, Any]], int]:
    parts = service.load(pipeline="entity,quote,supersense,event,coref")
    model = parts.quote.model
    batches: list[tuple[Any, Any]] = []
    ours = model.forward

    def capturing(batch_x: Any, batch_m: Any) -> Any:
        batches.append((batch_x, batch_m))
        return ours(batch_x, batch_m)

    model.forward = capturing
    try:
        with tempfile.TemporaryDirectory() as out:
            analysis = service.analyze(text, out_dir=Path(out))
    finally:
        model.forward = ours
    return model, batches, analysis.token_count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, help="default: benchmarks/texts/pride_and_prejudice.txt")
    parser.add_argument("--tokens", type=int, default=1000, help="whitespace words from the start; 0: all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "booknlp-bench-models")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ensure_models(args.models_dir, "small", seed=0)
    path = args.text or text_path("pride_and_prejudice.txt")
    text = first_words(path, args.tokens) if args.tokens else path.read_text(encoding="utf-8-sig")
    service = NLPService(Settings(models_dir=args.models_dir, model="small", torch_threads=args.threads))
    model, batches, tokens = capture_batches(service, text)
    computed = sum(x["toks"].numel() for x, _ in batches)
    real = sum(int(x["mask"].sum()) for x, _ in batches)
    read = sum(int(((m["cands"] != 0).any(1) | (m["quote"] != 0).any(1)).sum()) for _, m in batches)
    last_rows = sum(read_positions(m["cands"], m["quote"], least=least_rows(len(x["toks"]))).numel()
                    for x, m in batches)
    quotes = sum(len(x["toks"]) for x, _ in batches)
    layers = model.bert.config.num_hidden_layers
    print(f"{path.name}: {tokens} spaCy tokens, {quotes} quote windows in {len(batches)} batches, "
          f"speaker BERT {layers} layers")
    print(f"word-piece positions per layer: computed {computed} ({computed / tokens:.1f} per token), "
          f"real {real} (padding {1 - real / computed:.1%}), read by the scoring {read} "
          f"(last layer's rows now {last_rows})")
    upstream = import_upstream("booknlp.english.speaker_attribution").BERTSpeakerID.forward
    times: dict[str, list[float]] = {"upstream": [], "ours": []}
    with torch.no_grad():
        for _ in range(args.rounds):
            for name, forward in (("upstream", lambda x, m: upstream(model, x, m)), ("ours", model.forward)):
                started = time.process_time()
                scores = [forward(x, m) for x, m in batches]
                times[name].append(time.process_time() - started)
                if name == "upstream":
                    reference = scores
                elif not all(torch.equal(a.view(torch.int32), b.view(torch.int32))
                             for a, b in zip(scores, reference, strict=True)):
                    print("scores differ from upstream's")
                    return 1
    up, ours = statistics.median(times["upstream"]), statistics.median(times["ours"])
    print(f"forward over all batches, CPU seconds, median of {args.rounds} alternating rounds, "
          f"{args.threads} thread(s): upstream {up:.3f}, ours {ours:.3f}, ratio {up / ours:.2f}x; scores bit-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
