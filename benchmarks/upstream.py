"""Run unmodified upstream ``BookNLP(...).process()`` on our model folders, for parity and benchmarks.

Upstream loads its BERT bases from the Hugging Face hub by name. We give it a private, offline hub
cache built from the model folder's config.json and vocab.txt plus a throwaway random base-weights
file (upstream overwrites every BERT weight from the model file, so those weights never matter).
The run happens in a fresh subprocess: upstream keeps module-level state (device, seeds).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_RUNNER = r"""
import json, resource, sys, time, traceback
runs = json.loads(sys.argv[1])
t0 = time.time()
from booknlp.booknlp import BookNLP
imported = time.time() - t0
for run in runs:
    t1 = time.time()
    try:
        nlp = BookNLP("en", run["model_params"])
        t2 = time.time()
        nlp.process(run["text"], run["out"], run["id"])
        t3 = time.time()
        outcome = {"import_s": imported, "load_s": t2 - t1, "process_s": t3 - t2,
                   "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    except BaseException:
        outcome = {"error": traceback.format_exc()[-3000:]}
    print("@@RESULT@@" + json.dumps(outcome), flush=True)
"""


class UpstreamFailed(RuntimeError):
    """Upstream exited with an error; ``output`` holds the end of what it printed."""

    def __init__(self, code: int, output: str) -> None:
        super().__init__(f"upstream BookNLP failed (exit {code}):\n{output}")
        self.output = output


def hub_cache(model_dir: Path, cache_dir: Path) -> Path:
    """Build (once) a Hugging Face cache holding every BERT base of ``model_dir``; returns HF_HOME."""
    from transformers import BertConfig, BertModel

    for base in sorted((model_dir / "bert").iterdir()):
        repo = "models--" + base.name.replace("google_bert", "google--bert", 1)
        snapshot = cache_dir / "hub" / repo / "snapshots" / "local"
        if (snapshot / "model.safetensors").is_file():
            continue
        snapshot.mkdir(parents=True, exist_ok=True)
        BertModel(BertConfig.from_pretrained(str(base))).save_pretrained(str(snapshot))
        shutil.copy(base / "config.json", snapshot / "config.json")
        shutil.copy(base / "vocab.txt", snapshot / "vocab.txt")
        (cache_dir / "hub" / repo / "refs").mkdir(exist_ok=True)
        (cache_dir / "hub" / repo / "refs" / "main").write_text("local")
    return cache_dir


_STAGE_LINE = re.compile(r"^--- ([a-zA-Z ()]+?): ([0-9.]+) seconds ---")
"""Upstream prints its own per-stage timings: ``--- spacy: 1.234 seconds ---``."""


@dataclass(frozen=True)
class UpstreamRun:
    """One ``process()`` call: a text file, the model folder to use, where to write, and the pipes."""

    text_file: Path
    model_dir: Path
    out_dir: Path
    book_id: str = "book"
    pipeline: str = "entity,quote,supersense,event,coref"


def _model_params(run: UpstreamRun, spacy_model: str) -> dict[str, object]:
    files = json.loads((run.model_dir / "manifest.json").read_text())["components"]
    return {
        "text": str(run.text_file), "out": str(run.out_dir), "id": run.book_id,
        "model_params": {
            "pipeline": run.pipeline, "model": "custom", "spacy_model": spacy_model,
            "entity_model_path": str(run.model_dir / files["entity"]),
            "coref_model_path": str(run.model_dir / files["coref"]),
            "quote_attribution_model_path": str(run.model_dir / files["quote"]),
        },
    }


def run_upstream_batch(runs: list[UpstreamRun], *, spacy_model: str, cache_dir: Path,
                       threads: int | None = None) -> list[dict[str, Any]]:
    """Run each ``process()`` call in one fresh subprocess (one import); returns timings or an
    ``error`` traceback for each run, in order."""
    for model_dir in {run.model_dir for run in runs}:
        hub_cache(model_dir, cache_dir)
    env = dict(os.environ, HF_HOME=str(cache_dir), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONIOENCODING="utf-8", LC_ALL="C.UTF-8", LANG="C.UTF-8")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    params = [_model_params(run, spacy_model) for run in runs]
    done = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(params)], env=env,
                          capture_output=True, text=True, check=False)
    results, stages = [], {}
    for line in done.stdout.splitlines():
        timing = _STAGE_LINE.match(line)
        if timing:
            stages[timing.group(1)] = float(timing.group(2))
        elif line.startswith("@@RESULT@@"):
            results.append({**json.loads(line.removeprefix("@@RESULT@@")), "stages": stages})
            stages = {}
    if len(results) != len(runs):
        raise UpstreamFailed(done.returncode, done.stdout[-3000:] + "\n" + done.stderr[-3000:])
    return results


def run_upstream(text_file: Path, model_dir: Path, out_dir: Path, book_id: str, *, pipeline: str,
                 spacy_model: str, cache_dir: Path, threads: int | None = None) -> dict[str, Any]:
    """Run upstream BookNLP once with ``model: custom`` on the files of ``model_dir``; returns timings."""
    [result] = run_upstream_batch([UpstreamRun(text_file, model_dir, out_dir, book_id, pipeline)],
                                  spacy_model=spacy_model, cache_dir=cache_dir, threads=threads)
    if "error" in result:
        raise UpstreamFailed(1, result["error"])
    return result
