"""The tagger stage (entities + supersenses + events) alone: upstream's ``LitBankEntityTagger.tag`` against
ours on the same parsed text, in one process, on the same model instance; outputs must be identical.

Both sides run with the engine's event cut at the sentence end (instrument.py), so upstream does not
raise on random-weight models. Prints seconds per side and the ratio, alternating sides ``--rounds`` times.

    python -m benchmarks.tagger_stage --size small --text ../shared/data/texts/emma.txt [--chars 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from booknlp_api.config import Settings
from booknlp_api.engine.instrument import TrackerSlot, _tag_all_within_sentences
from booknlp_api.engine.service import NLPService


@contextlib.contextmanager
def upstream_tagger(entity: Any) -> Iterator[None]:
    """Upstream's own ``tag``/``tag_all`` on ``entity`` for the duration (ours shadow them on the instance)."""
    ours = entity.tag, entity.model.tag_all
    del entity.tag
    entity.model.tag_all = _tag_all_within_sentences(type(entity.model).tag_all.__get__(entity.model), TrackerSlot())
    try:
        yield
    finally:
        entity.tag, entity.model.tag_all = ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--text", type=Path, required=True)
    parser.add_argument("--chars", type=int)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "booknlp-bench-models")
    args = parser.parse_args()
    service = NLPService(Settings(models_dir=args.models_dir, model=args.size))
    entity = service.load(args.size, "entity,supersense,event").entity
    text = args.text.read_text(encoding="utf-8")[:args.chars]
    tokens = service._spacy_pipeline().tag(text)
    print(f"{len(tokens)} tokens, {args.size} models (timing only: random-weight models give no analysis)", flush=True)
    seconds: dict[str, list[float]] = {"upstream": [], "ours": []}
    outputs: dict[str, Any] = {}
    for _ in range(args.rounds):
        for side in ("upstream", "ours"):
            with upstream_tagger(entity) if side == "upstream" else contextlib.nullcontext():
                started = time.perf_counter()
                outputs[side] = entity.tag(tokens)
                seconds[side].append(time.perf_counter() - started)
            print(f"{side}: {seconds[side][-1]:.1f} s", flush=True)
    identical = outputs["upstream"] == outputs["ours"]
    best = {side: min(times) for side, times in seconds.items()}
    print(f"tagger stage, best of {args.rounds}: upstream {best['upstream']:.1f} s, ours {best['ours']:.1f} s, "
          f"ratio {best['upstream'] / best['ours']:.2f}x; outputs identical: {identical}")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
