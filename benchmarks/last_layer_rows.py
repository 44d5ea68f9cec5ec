"""The last-layer-at-read-rows replacements (speaker attribution, coref) against upstream on one text.

Runs the engine once on the text (small synthetic models: random weights, output meaningless) to
capture the speaker model's batches and coref's BERT inputs, prints how many word-piece positions each
BERT computes against the text's length and against the positions its head reads, then times upstream's
``BERTSpeakerID.forward`` and ``BERTCorefTagger.get_mention_reps`` and ours on the same inputs and model
instances, alternating, and checks the outputs are bit-identical.

    python -m benchmarks.last_layer_rows --tokens 1000 --rounds 5
    python -m benchmarks.last_layer_rows --text benchmarks/texts/the_call_of_the_wild.txt --tokens 0
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
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


def capture_batches(service: NLPService, text: str) -> tuple[Any, list[tuple[Any, Any]], Any, list[Any], int]:
    parts = service.load(pipeline="entity,quote,supersense,event,coref")
    model, coref = parts.quote.model, parts.coref.model
    batches: list[tuple[Any, Any]] = []
    coref_inputs: list[dict[str, Any]] = []
    ours, our_reps = model.forward, coref.get_mention_reps

    def capturing(batch_x: Any, batch_m: Any) -> Any:
        batches.append((batch_x, batch_m))
        return ours(batch_x, batch_m)

    def capturing_reps(**kwargs: Any) -> Any:
        coref_inputs.append(kwargs)
        return our_reps(**kwargs)

    model.forward, coref.get_mention_reps = capturing, capturing_reps
    try:
        with tempfile.TemporaryDirectory() as out:
            analysis = service.analyze(text, out_dir=Path(out))
    finally:
        model.forward, coref.get_mention_reps = ours, our_reps
    return model, batches, coref, coref_inputs, analysis.token_count


def alternate(rounds: int, calls: dict[str, Callable[[], list[torch.Tensor]]]) -> dict[str, float] | None:
    """Median CPU seconds of each call over ``rounds`` alternating rounds; None if outputs differ in a bit."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.no_grad():
        for _ in range(rounds):
            outputs = []
            for name, call in calls.items():
                started = time.process_time()
                outputs.append(call())
                times[name].append(time.process_time() - started)
            if not all(torch.equal(a.view(torch.int32), b.view(torch.int32))
                       for a, b in zip(*outputs, strict=True)):
                return None
    return {name: statistics.median(values) for name, values in times.items()}


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
    model, batches, coref, coref_inputs, tokens = capture_batches(service, text)
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
    coref_computed = sum(kw["input_ids"].numel() for kw in coref_inputs)
    coref_read = sum(int((((kw["transforms"] != 0) & (kw["matrix"] != 0).any(1)[:, :, None]).any(1)).sum())
                     for kw in coref_inputs)
    print(f"coref BERT ({coref.bert.config.num_hidden_layers} layers): {coref_computed} positions computed, "
          f"{coref_read} in mentions (read by the mention representations)")
    speaker = import_upstream("booknlp.english.speaker_attribution").BERTSpeakerID.forward
    reps = import_upstream("booknlp.english.bert_coref_quote_pronouns").BERTCorefTagger.get_mention_reps
    for label, calls in (
            ("speaker forward", {"upstream": lambda: [speaker(model, x, m) for x, m in batches],
                                 "ours": lambda: [model.forward(x, m) for x, m in batches]}),
            ("coref get_mention_reps", {"upstream": lambda: [reps(coref, **kw) for kw in coref_inputs],
                                        "ours": lambda: [coref.get_mention_reps(**kw) for kw in coref_inputs]})):
        medians = alternate(args.rounds, calls)
        if medians is None:
            print(f"{label}: outputs differ from upstream's")
            return 1
        up, ours = medians["upstream"], medians["ours"]
        print(f"{label}, CPU seconds, median of {args.rounds} alternating rounds, {args.threads} thread(s): "
              f"upstream {up:.3f}, ours {ours:.3f}, ratio {up / ours:.2f}x; outputs bit-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
