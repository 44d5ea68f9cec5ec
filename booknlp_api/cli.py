"""``booknlp-api``: a thin command line over the models, the engine and the HTTP service."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from booknlp_api.config import Settings
from booknlp_api.jobs.metrics_files import share_metrics, share_metrics_in
from booknlp_api.logs import configure_logging


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
                                   book_id=book_id, progress=progress, precision=args.precision)
    except EngineError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    bar.n = 100
    bar.close()
    result = build_result(args.out, book_id, model=analysis.model, pipeline=analysis.pipeline,
                          device=analysis.device, timings=analysis.timings,
                          synthetic_models=analysis.synthetic_models, token_count=analysis.token_count,
                          precision=analysis.precision)
    (args.out / f"{book_id}.json").write_text(result.model_dump_json(), encoding="utf-8")
    note = " (SYNTHETIC random-weight models: output is linguistically meaningless)" \
        if analysis.synthetic_models else ""
    print(f"{analysis.token_count} tokens, {sum(analysis.timings.values()):.1f}s on {analysis.device} "
          f"({analysis.precision}): "
          f"{', '.join(sorted(p.name for p in analysis.files.values()))}, {book_id}.json in {args.out}{note}")
    return 0


def _compare(args: argparse.Namespace, settings: Settings) -> int:
    from booknlp_api.engine.agreement import compare_folders
    from booknlp_api.engine.result import NativeFormatError

    try:
        found = compare_folders(args.reference, args.candidate, args.id, events=not args.no_events)
    except (OSError, NativeFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, value in found.values().items():
        print(f"{name}\t{value:.4f}")
    lowest = found.lowest()
    print(f"lowest\t{lowest:.4f}")
    return 1 if args.min is not None and lowest < args.min else 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from booknlp_api.api.serve import exposure_refusal, serve

    updates = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    settings = settings.model_copy(update=updates)
    if refusal := exposure_refusal(settings, insecure=args.insecure):
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    serve(settings)
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from booknlp_api.jobs.database import database_url
    from booknlp_api.jobs.key_file import valid_key_name
    from booknlp_api.jobs.keys import KeyExists, KeyLimits, KeyStore, hash_key

    if args.keys_command == "hash":
        print(hash_key(sys.stdin.readline().strip()))
        return 0
    store = KeyStore(database_url(settings.database_url, settings.data_dir))
    try:
        if args.keys_command == "create":
            if not valid_key_name(args.name):
                print(f"error: {args.name!r} is not a key name (letters, digits, . _ @ -)", file=sys.stderr)
                return 2
            limits = KeyLimits(args.rate_limit, args.max_active_jobs, args.max_chars_per_day)
            try:
                key = store.create(args.name, admin=args.admin, limits=limits)
            except KeyExists:
                print(f"error: a key named {args.name!r} exists (revoked keys keep their name)", file=sys.stderr)
                return 1
            print(key)
            print(f"key {args.name!r}{' (admin)' if args.admin else ''} created; it is shown only this once",
                  file=sys.stderr)
        elif args.keys_command == "revoke":
            if not store.revoke(args.name):
                print(f"error: no active key named {args.name!r}", file=sys.stderr)
                return 1
            print(f"key {args.name!r} revoked")
        else:
            for key in store.all():
                state = "revoked" if key.revoked_at is not None else "active"
                own = ", ".join(f"{k}={v}" for k, v in vars(key.limits).items() if v is not None)
                print(f"{key.name}\t{state}\t{'admin' if key.admin else 'user'}\t{own or 'default limits'}")
    finally:
        store.close()
    return 0


def _rate(value: str) -> str:
    from booknlp_api.config import check_rate_limit

    try:
        return check_rate_limit(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return int(value)


def _keys_parser(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys (kept as hashes in the job database: BOOKNLP_DATABASE_URL, "
                                            "else SQLite in BOOKNLP_DATA_DIR)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="make a key and print it (shown once)")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="sees and cancels every key's jobs")
    create.add_argument("--rate-limit", type=_rate, help="its own request rate, e.g. 120/minute")
    create.add_argument("--max-active-jobs", type=_positive, help="its own limit of jobs queued or running at once")
    create.add_argument("--max-chars-per-day", type=_positive, help="its own limit of characters submitted per day")
    key_commands.add_parser("list", help="every key: name, state, role, own limits (never the key)")
    revoke = key_commands.add_parser("revoke", help="refuse a key from now on (its jobs stay its own)")
    revoke.add_argument("name")
    key_commands.add_parser("hash", help="read a key on standard input, print its sha256: form for a keys file")
    keys.set_defaults(run=_keys)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    folder = None
    if settings.worker_metrics_port is not None:
        # Private to this worker and the processes it starts (one per device): other workers may share the data
        # folder. Chosen before the job modules import prometheus_client.
        folder = share_metrics_in(Path(tempfile.mkdtemp(prefix="booknlp-worker-metrics-")))
    from booknlp_api.jobs.metrics_files import serve_metrics
    from booknlp_api.jobs.supervisor import run_worker_command

    try:
        if settings.worker_metrics_port is not None:
            serve_metrics(settings.worker_metrics_port)
        return run_worker_command(settings, exit_with_parent=args.exit_with_parent)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


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
    an.add_argument("--precision", choices=["exact", "fast"],
                    help="exact: byte-identical to BookNLP; fast: faster, may differ (default: BOOKNLP_PRECISION)")
    an.add_argument("--quiet", action="store_true", help="no progress bar")
    an.set_defaults(run=_analyze)

    cp = commands.add_parser("compare", help="agreement of two runs' native files (entities, quotes, coref...)")
    cp.add_argument("reference", type=Path, help="folder of the reference run (exact mode, or upstream)")
    cp.add_argument("candidate", type=Path, help="folder of the run compared with it")
    cp.add_argument("--id", default="book", help="book id of both runs' files (default: book)")
    cp.add_argument("--no-events", action="store_true", help="the event pipe did not run")
    cp.add_argument("--min", type=float, help="exit 1 when any agreement is below this (0 to 1)")
    cp.set_defaults(run=_compare)

    sv = commands.add_parser("serve", help="run the HTTP service")
    sv.add_argument("--host")
    sv.add_argument("--port", type=int)
    sv.add_argument("--insecure", action="store_true",
                    help="allow BOOKNLP_AUTH=disabled on a non-loopback address (authentication done in front)")
    sv.set_defaults(run=_serve)
    _keys_parser(commands)

    wk = commands.add_parser("worker", help="run queued jobs (the API starts BOOKNLP_WORKERS of these itself); "
                                                  "with BOOKNLP_DEVICES, one process per device")
    wk.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it dies")
    wk.set_defaults(run=_worker)

    from booknlp_api.client.commands import add_commands

    add_commands(commands)
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
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        # Before anything imports prometheus_client: the API and the worker processes it starts (they inherit
        # the folder) write their metrics to files under the data folder, which the API's /metrics reads.
        share_metrics(settings.data_dir)
    return int(args.run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
