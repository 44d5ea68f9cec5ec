"""Import + model load time: upstream's way (random initialisation, mean-resized embeddings, then
the checkpoint) against ours (no initialisation, then the checkpoint), each in fresh processes,
alternating, on the same model files.

    python -m benchmarks.model_load --models-dir /tmp/models --model small --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_RUN = r"""
import json, sys, time
t0 = time.perf_counter()
from booknlp_api.engine.components import build
from booknlp_api.models.bert import import_upstream
from booknlp_api.models.manifest import read_manifest
for name in ("entity_tagger", "bert_qa", "litbank_coref", "name_coref"):
    import_upstream("booknlp.english." + name)
t1 = time.perf_counter()
folder, initialise = sys.argv[1], sys.argv[2] == "1"
from pathlib import Path
manifest = read_manifest(Path(folder))
load = {}
for component in ("entity", "quote", "coref"):
    started = time.perf_counter()
    build(component, Path(folder), manifest.components[component], initialise=initialise)
    load[component] = time.perf_counter() - started
print("@@" + json.dumps({"import_s": t1 - t0, "load_s": load}))
"""


def run_once(folder: Path, initialise: bool) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), TRANSFORMERS_VERBOSITY="error")
    done = subprocess.run([sys.executable, "-c", _RUN, str(folder), "1" if initialise else "0"], env=env,
                          capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("@@"))
    return json.loads(line[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--model", default="small")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = args.models_dir / args.model
    runs: dict[str, list[dict[str, object]]] = {"upstream": [], "ours": []}
    for _ in range(args.rounds):
        for way in ("upstream", "ours"):
            runs[way].append(run_once(folder, initialise=way == "upstream"))
    print(f"model {args.model}, {args.rounds} rounds, median seconds (fresh process each)")
    print(f"{'':10} {'import':>8} {'entity':>8} {'quote':>8} {'coref':>8} {'load':>8}")
    medians = {}
    for way, results in runs.items():
        imports = statistics.median(float(r["import_s"]) for r in results)  # type: ignore[arg-type]
        parts = {c: statistics.median(r["load_s"][c] for r in results) for c in ("entity", "quote", "coref")}  # type: ignore[index]
        total = statistics.median(sum(r["load_s"].values()) for r in results)  # type: ignore[attr-defined]
        medians[way] = total
        cells = " ".join(f"{value:8.2f}" for value in (imports, *parts.values(), total))
        print(f"{way:10} {cells}")
    print(f"load ratio upstream/ours: {medians['upstream'] / medians['ours']:.2f}x")
    print(json.dumps(runs))


if __name__ == "__main__":
    main()
