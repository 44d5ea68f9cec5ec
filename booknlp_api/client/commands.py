"""``booknlp-api submit`` and ``booknlp-api jobs ...``: the job API from a terminal, through the client."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from booknlp_api.client.connection import DEFAULT_URL, KEY_VARIABLE, URL_VARIABLE
from booknlp_api.client.errors import BookNLPError
from booknlp_api.vocabulary import ARCHIVE_SUFFIXES, JOB_STATUSES, PIPES, PRECISIONS

if TYPE_CHECKING:
    from booknlp_api.client.sync import Client

Handler = Callable[[argparse.Namespace, "Client"], int]


def add_commands(commands: Any) -> None:
    """The client's commands, added to the CLI's subcommands."""
    submit = commands.add_parser("submit", help="send books to a booknlp-api service as jobs")
    submit.add_argument("books", type=Path, nargs="+", help="book files (text, EPUB, HTML; gzipped or not), or "
                        ".zip/.tar.gz archives of books (one batch each)")
    submit.add_argument("--wait", action="store_true", help="wait for each job, with a progress bar")
    submit.add_argument("--out", type=Path, help="write each book's native files (BOOK.zip) and JSON (BOOK.json) "
                                                 "here; implies --wait")
    submit.add_argument("--model", help="model name (default: the service's)")
    submit.add_argument("--pipeline", help=f"comma-separated: {','.join(PIPES)} (default: all)")
    submit.add_argument("--precision", choices=PRECISIONS)
    submit.add_argument("--strip-gutenberg", action="store_true", help="remove Project Gutenberg's boilerplate")
    submit.add_argument("--no-cache", action="store_true", help="analyse again even if an identical result exists")
    _connection_options(submit)
    submit.set_defaults(run=_run(_submit))

    jobs = commands.add_parser("jobs", help="jobs on a booknlp-api service: list, status, cancel, result")
    job_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = job_commands.add_parser("list", help="your jobs, newest first")
    listing.add_argument("--status", choices=JOB_STATUSES)
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(run=_run(_list))
    for name, handler, text in (("status", _status, "a job's status and progress (JSON)"),
                                ("cancel", _cancel, "cancel a queued job, or stop a running one")):
        command = job_commands.add_parser(name, help=text)
        command.add_argument("job_id")
        command.set_defaults(run=_run(handler))
    result = job_commands.add_parser("result", help="a finished job's result")
    result.add_argument("job_id")
    result.add_argument("--format", choices=["json", "native", "html"], default="json")
    result.add_argument("--out", type=Path, help="file to write (default: standard output; native: BOOK.zip)")
    result.set_defaults(run=_run(_result))
    for command in (listing, result, *job_commands.choices.values()):
        if not any(action.dest == "server" for action in command._actions):
            _connection_options(command)


def _connection_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--server", help=f"the service's URL (default: {URL_VARIABLE}, else {DEFAULT_URL})")
    command.add_argument("--key", help=f"API key (default: {KEY_VARIABLE})")


def _run(handler: Handler) -> Callable[[argparse.Namespace, Any], int]:
    def run(args: argparse.Namespace, _settings: Any) -> int:
        from booknlp_api.client.sync import Client  # the schemas load torch: only when a command runs

        try:
            with Client(args.server, api_key=args.key) as client:
                return handler(args, client)
        except BookNLPError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return run


def _submit(args: argparse.Namespace, client: Client) -> int:
    options: dict[str, Any] = {"cache": not args.no_cache, "strip_gutenberg": args.strip_gutenberg}
    if args.model:
        options["model"] = args.model
    if args.precision:
        options["precision"] = args.precision
    if args.pipeline:
        options["pipeline"] = [pipe.strip() for pipe in args.pipeline.split(",") if pipe.strip()]
    archives = [book for book in args.books if book.name.lower().endswith(ARCHIVE_SUFFIXES)]
    failed = sum(_submit_archive(args, client, archive, options) for archive in archives)
    jobs = [client.submit(book, **options) for book in args.books if book not in archives]
    for book, job in zip(args.books, jobs):
        print(f"{job.id}\t{job.status}\t{book}")
    if not (args.wait or args.out):
        return 1 if failed else 0
    for job in jobs:
        try:
            client.wait(job, progress=True)
        except BookNLPError as exc:
            print(f"error: {job.book_id}: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            client.download(job, args.out / f"{job.book_id}.zip", "native")  # the server's bytes, as sent
            client.download(job, args.out / f"{job.book_id}.json", "json")
            print(f"{job.book_id}: {args.out / job.book_id}.zip, .json")
    return 1 if failed else 0


def _submit_archive(args: argparse.Namespace, client: Client, archive: Path, options: dict[str, Any]) -> int:
    """A .zip/.tar.gz of books as one batch; with --out, its results as ARCHIVE.zip and ARCHIVE.csv. 1: failures."""
    batch = client.submit_batch(archive, **options)
    print(f"{batch.id}\tbatch of {batch.books}\t{archive}")
    if not (args.wait or args.out):
        return 0
    batch = client.wait_batch(batch, progress=True)
    if args.out:
        stem = archive.name.split(".")[0] or "batch"
        args.out.mkdir(parents=True, exist_ok=True)
        client.download_batch(batch, args.out / f"{stem}.zip", "zip")
        client.download_batch(batch, args.out / f"{stem}.csv", "csv")
        print(f"{archive}: {args.out / stem}.zip, .csv")
    return 0 if batch.counts.get("succeeded") == batch.books else 1


def _list(args: argparse.Namespace, client: Client) -> int:
    page = client.jobs(args.status, limit=args.limit)
    for job in page.jobs:
        done = "" if job.progress is None else f"{100 * job.progress.fraction:.0f}%"
        print(f"{job.id}\t{job.status}\t{done}\t{job.book_id}\t{job.created_at:%Y-%m-%d %H:%M:%S}")
    return 0


def _status(args: argparse.Namespace, client: Client) -> int:
    print(client.job(args.job_id).model_dump_json(indent=2, by_alias=True))
    return 0


def _cancel(args: argparse.Namespace, client: Client) -> int:
    job = client.cancel(args.job_id)
    print(f"{job.id}\t{job.status}" + ("\tstopping" if job.cancel_requested and job.status == "running" else ""))
    return 0


def _result(args: argparse.Namespace, client: Client) -> int:
    out = args.out
    if out is None and args.format == "native":
        out = Path(f"{client.job(args.job_id).book_id}.zip")
    if out is None:
        sys.stdout.flush()
        client.download(args.job_id, sys.stdout.buffer, args.format)
        sys.stdout.buffer.flush()
    else:
        client.download(args.job_id, out, args.format)
        print(out, file=sys.stderr)
    return 0
