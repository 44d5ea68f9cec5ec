"""Run unmodified upstream ``BookNLP(...).process()`` on our model folders, for parity and benchmarks.

Upstream loads its BERT bases from the Hugging Face hub by name. We give it a private, offline hub
cache built from the model folder's config.json and vocab.txt plus a throwaway random base-weights
file (upstream overwrites every BERT weight from the model file, so those weights never matter).
The run happens in a fresh subprocess: upstream keeps module-level state (device, seeds).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

_RUNNER = r"""
import json, resource, sys, time
params = json.loads(sys.argv[1])
t0 = time.time()
from booknlp.booknlp import BookNLP
t1 = time.time()
nlp = BookNLP("en", params["model_params"])
t2 = time.time()
nlp.process(params["text"], params["out"], params["id"])
t3 = time.time()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("@@RESULT@@" + json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "process_s": t3 - t2,
                                 "peak_rss_bytes": peak}))
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


def run_upstream(text_file: Path, model_dir: Path, out_dir: Path, book_id: str, *, pipeline: str,
                 spacy_model: str, cache_dir: Path, threads: int | None = None) -> dict[str, float]:
    """Run upstream BookNLP with ``model: custom`` on the files of ``model_dir``; returns timings."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    files = manifest["components"]
    params = {
        "text": str(text_file), "out": str(out_dir), "id": book_id,
        "model_params": {
            "pipeline": pipeline, "model": "custom", "spacy_model": spacy_model,
            "entity_model_path": str(model_dir / files["entity"]),
            "coref_model_path": str(model_dir / files["coref"]),
            "quote_attribution_model_path": str(model_dir / files["quote"]),
        },
    }
    env = dict(os.environ, HF_HOME=str(hub_cache(model_dir, cache_dir)), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONIOENCODING="utf-8", LC_ALL="C.UTF-8", LANG="C.UTF-8")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    done = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(params)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UpstreamFailed(done.returncode, done.stdout[-3000:] + "\n" + done.stderr[-3000:])
    line = next(line for line in done.stdout.splitlines() if line.startswith("@@RESULT@@"))
    return json.loads(line.removeprefix("@@RESULT@@"))
