"""``booknlp-api``: a thin command line over the models, the engine and the HTTP service."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from booknlp_api.config import Settings


def _models_download(args: argparse.Namespace, settings: Settings) -> int:
    from booknlp_api.models.download import DownloadError, download

    models_dir = args.dir or settings.models_dir
    sizes = ["small", "big"] if args.size == "all" else [args.size]
    try:
        for size in sizes:
            manifest = download(size, models_dir, models_url=settings.models_url,
                                huggingface_url=settings.huggingface_url, timeout=settings.download_timeout,
                                progress=not args.quiet)
            print(f"{manifest.name}: {len(manifest.files)} files in {models_dir / manifest.name}")
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _models_synthesize(args: argparse.Namespace, settings: Settings) -> int:
    from booknlp_api.models.synthesize import synthesize

    models_dir = args.dir or settings.models_dir
    manifest = synthesize(args.size, models_dir, seed=args.seed, name=args.name)
    print(f"{manifest.name}: SYNTHETIC random-weight models (seed {manifest.seed}) in {models_dir / manifest.name}; "
          "their output is linguistically meaningless")
    return 0


def _models_list(args: argparse.Namespace, settings: Settings) -> int:
    from booknlp_api.models.manifest import available_models

    models_dir = args.dir or settings.models_dir
    found = available_models(models_dir)
    if not found:
        print(f"no models in {models_dir}")
        return 1
    for name, manifest in found.items():
        kind = f"SYNTHETIC (random weights, seed {manifest.seed})" if manifest.synthetic else manifest.source
        size = sum(record.bytes for record in manifest.files.values())
        print(f"{name}\t{size / 1e6:.1f} MB\t{kind}")
    return 0


def _analyze(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from booknlp_api.engine.errors import EngineError
    from booknlp_api.engine.progress import STAGE_WEIGHTS, StageProgress
    from booknlp_api.engine.result import build_result
    from booknlp_api.engine.service import NLPService

    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.file} as UTF-8 text: {exc}", file=sys.stderr)
        return 2
    book_id = args.id or args.file.stem
    bar = tqdm(total=100, unit="%", disable=args.quiet, bar_format="{l_bar}{bar}| {elapsed} elapsed")
    done: dict[str, float] = {}

    def progress(step: StageProgress) -> None:
        done[step.stage] = step.fraction * STAGE_WEIGHTS.get(step.stage, 0.0)
        bar.set_description(step.stage)
        bar.n = round(100 * min(1.0, sum(done.values())))
        bar.refresh()

    try:
        service = NLPService(settings)
        analysis = service.analyze(text, out_dir=args.out, model=args.model, pipeline=args.pipeline,
                                   book_id=book_id, progress=progress)
    except EngineError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    bar.n = 100
    bar.close()
    result = build_result(args.out, book_id, model=analysis.model, pipeline=analysis.pipeline,
                          device=analysis.device, timings=analysis.timings,
                          synthetic_models=analysis.synthetic_models, token_count=analysis.token_count)
    (args.out / f"{book_id}.json").write_text(result.model_dump_json(), encoding="utf-8")
    note = " (SYNTHETIC random-weight models: output is linguistically meaningless)" \
        if analysis.synthetic_models else ""
    print(f"{analysis.token_count} tokens, {sum(analysis.timings.values()):.1f}s on {analysis.device}: "
          f"{', '.join(sorted(p.name for p in analysis.files.values()))}, {book_id}.json in {args.out}{note}")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from booknlp_api.api.serve import serve

    updates = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    serve(settings.model_copy(update=updates))
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from booknlp_api.jobs.process import run_worker

    return run_worker(settings, exit_with_parent=args.exit_with_parent)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="booknlp-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="prepare model files (never done at request time)")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    dl = model_commands.add_parser("download", help="fetch BookNLP's trained models")
    dl.add_argument("--size", choices=["small", "big", "all"], required=True)
    dl.add_argument("--dir", type=Path, help="models folder (default: BOOKNLP_MODELS_DIR)")
    dl.add_argument("--quiet", action="store_true", help="no progress bar")
    dl.set_defaults(run=_models_download)
    syn = model_commands.add_parser("synthesize", help="build seeded random-weight models (for tests)")
    syn.add_argument("--size", choices=["tiny", "small", "big"], required=True)
    syn.add_argument("--dir", type=Path, help="models folder (default: BOOKNLP_MODELS_DIR)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--name", help="folder name (default: the size)")
    syn.set_defaults(run=_models_synthesize)
    ls = model_commands.add_parser("list", help="models found in the models folder")
    ls.add_argument("--dir", type=Path, help="models folder (default: BOOKNLP_MODELS_DIR)")
    ls.set_defaults(run=_models_list)

    an = commands.add_parser("analyze", help="run the engine on a text file, write native files and JSON")
    an.add_argument("file", type=Path)
    an.add_argument("--out", type=Path, required=True)
    an.add_argument("--model", help="model name (default: BOOKNLP_MODEL)")
    an.add_argument("--pipeline", help="comma-separated: entity,quote,supersense,event,coref (default: all)")
    an.add_argument("--id", help="book id used in file names (default: the file's stem)")
    an.add_argument("--quiet", action="store_true", help="no progress bar")
    an.set_defaults(run=_analyze)

    sv = commands.add_parser("serve", help="run the HTTP service")
    sv.add_argument("--host")
    sv.add_argument("--port", type=int)
    sv.set_defaults(run=_serve)

    wk = commands.add_parser("worker", help="run queued jobs (the API starts BOOKNLP_WORKERS of these itself)")
    wk.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it dies")
    wk.set_defaults(run=_worker)
    return parser


_ENGINE_COMMANDS = frozenset({"serve", "worker", "analyze"})
"""Commands that load upstream's libraries (``serve`` through its worker processes)."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in _ENGINE_COMMANDS:
        # transformers' notices (embedding resizing, tokenizer advice) are about upstream's code,
        # not the user's input; its errors still show. Set before transformers is imported, and
        # inherited by worker processes; a TRANSFORMERS_VERBOSITY the user chose wins.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
