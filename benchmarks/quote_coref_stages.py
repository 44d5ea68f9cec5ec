"""Speaker attribution and coref: upstream's components against ours (with the replacements), in one
process on the same parsed book, alternating, outputs compared.

The tagger's entities can be replaced by a BookNLP ``.entities`` file (e.g. BookNLP's published
*Emma* output) so that attribution and coref see a realistic load: random-weight taggers find
almost no characters. Prints seconds per stage and way, the ratio, and whether outputs are equal.

    python -m benchmarks.quote_coref_stages --models-dir /tmp/models --text emma.txt \
        --entities ../shared/data/booknlp_emma_reference/158_emma.entities --chars 300000
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import torch

from booknlp_api.config import Settings
from booknlp_api.engine import stages
from booknlp_api.engine.components import Components, _move, build
from booknlp_api.engine.pipeline import parse_pipeline
from booknlp_api.engine.service import NLPService, normalize_text

TIMED = ("attribution", "coref")


def read_entities(path: Path, tokens: list[Any]) -> list[tuple[int, int, str, str]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        _, start, end, prop, cat, _ = line.split("\t")
        if int(end) < len(tokens):
            found.append((int(start), int(end), f"{prop}_{cat}",
                          " ".join(t.text for t in tokens[int(start):int(end) + 1])))
    return sorted(found)


def run_chain(book: stages.Book, parts: Components) -> dict[str, float]:
    pipeline = parse_pipeline(None)
    seconds = {}
    chain = (("quotes", stages.find_quotes), ("attribution", stages.attribute), ("names", stages.cluster_names),
             ("gender", stages.infer_gender), ("coref", stages.resolve_coref))
    for name, run in chain:
        started = time.perf_counter()
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            run(book, parts, pipeline, None)
        seconds[name] = time.perf_counter() - started
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--model", default="small")
    parser.add_argument("--text", type=Path, required=True)
    parser.add_argument("--entities", type=Path, help="BookNLP .entities file to use instead of the tagger's")
    parser.add_argument("--chars", type=int, default=0, help="use only the first N characters (0: all)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    service = NLPService(Settings(models_dir=args.models_dir, model=args.model))
    ours = service.load(args.model)
    upstream_parts = {}
    for component in ("quote", "coref"):
        built = build(component, ours.folder, ours.manifest.components[component], initialise=True)
        _move(component, built, ours.device)
        upstream_parts[component] = built
    upstream = dataclasses.replace(ours, **upstream_parts)

    text = normalize_text(args.text.read_text(encoding="utf-8-sig"))
    text = text[:args.chars] if args.chars else text
    tokens = service._spacy_pipeline().tag(text)
    if args.entities:
        entities = read_entities(args.entities, tokens)
    else:
        book = stages.Book(text=text, tokens=tokens)
        stages.tag(book, ours, parse_pipeline(None), None)
        entities = book.entities
    print(f"{len(tokens)} tokens, {len(entities)} entities, model {args.model} on {ours.device}")

    results: dict[str, list[dict[str, float]]] = {"upstream": [], "ours": []}
    outputs = {}
    for _ in range(args.rounds):
        for way, parts in (("upstream", upstream), ("ours", ours)):
            book = stages.Book(text="", tokens=tokens, entities=list(entities))
            results[way].append(run_chain(book, parts))
            outputs[way] = json.dumps([book.attributions, book.assignments, book.characters], default=str)
    for stage in TIMED:
        before = min(r[stage] for r in results["upstream"])
        after = min(r[stage] for r in results["ours"])
        print(f"{stage:12} upstream {before:7.2f} s   ours {after:7.2f} s   {before / after:5.2f}x"
              f"  (best of {args.rounds})")
    print("outputs identical:", outputs["upstream"] == outputs["ours"])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
