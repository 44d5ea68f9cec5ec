"""The NLP service: models loaded once per process, one analysis at a time, stage by stage."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from booknlp_api.config import Settings, resolve_spacy_model
from booknlp_api.device import DeviceInfo, describe_device, resolve_device
from booknlp_api.engine import tok2vec_predict
from booknlp_api.engine.chatter import captured_stdout
from booknlp_api.engine.components import Components
from booknlp_api.engine.errors import (
    Cancelled,
    DeviceOutOfMemory,
    EngineError,
    InvalidInput,
    InvalidText,
    ModelNotAvailable,
    StageFailed,
)
from booknlp_api.engine.instrument import TrackerSlot, instrument
from booknlp_api.engine.memory import (
    FAST_COPY_PER_FILE_BYTE,
    available_memory,
    check_fits,
    profile_for,
    release_free_memory,
)
from booknlp_api.engine.native import write_native
from booknlp_api.engine.pipeline import Pipeline, parse_pipeline
from booknlp_api.engine.precision import FAST, FastMode, Precision
from booknlp_api.engine.progress import ProgressCallback, RunTracker
from booknlp_api.engine.split_parse import SplitParser
from booknlp_api.engine.stages import STAGES, Book, Run
from booknlp_api.models.bert import import_upstream
from booknlp_api.models.manifest import ModelError, ModelManifest, available_models, read_manifest, verify
from booknlp_api.vocabulary import BOOK_ID

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class RunSummary:
    """How a run went: enough to rebuild its JSON result from the native files later."""

    model: str
    pipeline: list[str]
    device: str
    synthetic_models: bool
    token_count: int
    timings: dict[str, float]
    precision: Precision

    def summary(self) -> RunSummary:
        return RunSummary(**{field.name: getattr(self, field.name) for field in fields(RunSummary)})


@dataclass(frozen=True)
class Analysis(RunSummary):
    """What one run produced: BookNLP's native files in ``folder``, and how the run went."""

    book_id: str
    folder: Path
    files: dict[str, Path]


def normalize_text(text: str) -> str:
    """What upstream sees when it reads the same text from a file: universal newlines."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


class NLPService:
    """Owns the spaCy pipeline and every loaded model; safe to share between threads."""

    def __init__(self, settings: Settings, fast_mode: FastMode = FAST) -> None:
        self.settings = settings
        self.fast_mode = fast_mode
        """What ``precision="fast"`` changes (benchmarks measure other choices through it)."""
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        self.device = resolve_device(settings.device)
        self.spacy_model = resolve_spacy_model(settings.spacy_model)
        self._spacy: Any = None
        self._models: dict[tuple[str, Precision], Components] = {}
        self._slot = TrackerSlot()
        self._load_lock = threading.RLock()
        self._run_lock = threading.Lock()

    # -- models -----------------------------------------------------------------------------------
    def available_models(self) -> dict[str, ModelManifest]:
        return available_models(self.settings.models_dir)

    def loaded_models(self) -> dict[str, Components]:
        """Models in memory at the default precision (the other one loads on first use)."""
        default = self._computed_as(None)
        return {name: parts for (name, precision), parts in self._models.items() if precision == default}

    def device_info(self) -> DeviceInfo:
        return describe_device(self.device)

    def load(self, model: str | None = None, pipeline: Iterable[str] | str | None = None,
             precision: Precision | None = None) -> Components:
        """Load (once) what ``pipeline`` needs from ``model`` at ``precision``; later calls reuse it."""
        chosen = parse_pipeline(pipeline)
        with self._load_lock:
            parts = self._components(model or self.settings.model, self._computed_as(precision))
            self._spacy_pipeline()
            for component in chosen.components:
                if getattr(parts, component) is not None:
                    continue
                fast_mode = parts.fast_mode
                if fast_mode is not None and not fast_mode.changes_component(component, self.device):
                    # a component fast mode does not change: one instance, exact's, in memory
                    exact = self._components(parts.name, "exact")
                    self._load_component(exact, component)
                    parts.share(component, exact)
                else:
                    self._load_component(parts, component)
            return parts

    def _load_component(self, parts: Components, component: str) -> None:
        if getattr(parts, component) is not None:
            return
        started = time.monotonic()
        parts.load(component)
        instrument(component, getattr(parts, component), self._slot)
        parts.load_seconds[component] = time.monotonic() - started
        log.info("loaded %s/%s (%s) on %s in %.1fs", parts.name, component, parts.precision,
                 self.device, parts.load_seconds[component])

    def _computed_as(self, precision: Precision | None) -> Precision:
        """The components a precision runs on: fast with no model option for this device has exact's
        models, so it shares exact's components instead of loading a second, identical copy."""
        precision = precision or self.settings.precision
        if precision == "fast" and not self.fast_mode.changes_models(self.device):
            return "exact"
        return precision

    def _components(self, name: str, precision: Precision) -> Components:
        if (name, precision) in self._models:
            return self._models[(name, precision)]
        folder = self.settings.models_dir / name
        available = sorted(self.available_models())
        if not BOOK_ID.match(name) or name not in available:
            raise ModelNotAvailable(
                f"model {name!r} is not available in {self.settings.models_dir}; "
                f"available: {', '.join(available) or 'none'}", available)
        try:
            manifest = read_manifest(folder)
            verify(folder, manifest)
        except ModelError as exc:
            raise ModelNotAvailable(str(exc), available) from exc
        fast_mode = self.fast_mode if precision == "fast" else None
        parts = Components(name=name, manifest=manifest, folder=folder, device=self.device, precision=precision,
                           fast_mode=fast_mode)
        self._models[(name, precision)] = parts
        return parts

    def _spacy_pipeline(self) -> Any:
        if self._spacy is None:
            import spacy

            pipelines = import_upstream("booknlp.common.pipelines")
            nlp = spacy.load(self.spacy_model, disable=["ner"])
            tok2vec_predict.install(nlp)  # same vectors, without a whole-book transient (~16 KB per token)
            self._spacy = pipelines.SpacyPipeline(nlp)
        return self._spacy

    def memory_limit(self) -> int:
        """Bytes a worker may use (the setting, else the cgroup's limit, else physical memory)."""
        return self.settings.worker_memory_bytes or available_memory()

    def check_memory(self, text: str, model: str | None = None, precision: Precision | None = None) -> None:
        """Raise ``TooLargeForMemory`` when analysing ``text`` would need more memory than a worker may use
        (at ``precision``: fast mode's own copies of the components it changes count too)."""
        name = model or self.settings.model
        loaded = next((parts for (loaded_name, _), parts in self._models.items() if loaded_name == name), None)
        manifest = loaded.manifest if loaded else read_manifest(self.settings.models_dir / name)
        profile = profile_for(manifest)
        if self._computed_as(precision) == "fast":
            files = [self.settings.models_dir / name / file for component, file in manifest.components.items()
                     if self.fast_mode.changes_component(component, self.device)]
            extra = FAST_COPY_PER_FILE_BYTE * sum(path.stat().st_size for path in files if path.exists())
            profile = dataclasses.replace(profile, base=profile.base + int(extra))
        check_fits(text, profile, self.memory_limit())

    # -- analysis ---------------------------------------------------------------------------------
    def analyze(
        self, text: str, *, out_dir: Path, model: str | None = None,
        pipeline: Iterable[str] | str | None = None, book_id: str = "book",
        progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
        precision: Precision | None = None,
    ) -> Analysis:
        """Run the chosen stages on ``text`` and write BookNLP's native files to ``out_dir``.

        ``precision``: exact (byte-identical to upstream) or fast; None: the configured default.
        """
        chosen = parse_pipeline(pipeline)
        if not BOOK_ID.match(book_id):
            raise InvalidInput("book_id must be 1-100 letters, digits, '.', '_' or '-', starting alphanumeric")
        text = normalize_text(text)
        if not text.strip():
            raise InvalidText("the text is empty or only whitespace; there is nothing to analyse")
        with self._load_lock:
            # an unknown model is refused before the memory check
            self._components(model or self.settings.model, self._computed_as(precision))
        self.check_memory(text, model, precision)
        parts = self.load(model, chosen.names(), precision)
        tracker = RunTracker(progress, cancel)
        with self._run_lock:
            self._slot.tracker = tracker
            try:
                requested = precision or self.settings.precision
                run = Run(self._parser(requested), self._processes(requested, self.fast_mode.tag_processes),
                          self._processes(requested, self.fast_mode.quote_processes),
                          requested == "fast" and self.fast_mode.quote_by_length)
                analysis = self._run(text, parts, chosen, book_id, out_dir, tracker, run)
                return dataclasses.replace(analysis, precision=requested)
            finally:
                self._slot.tracker = None
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                release_free_memory()  # an idle worker should not keep a long book's pages

    def _parser(self, precision: Precision) -> Any:
        """What the parse stage calls ``tag(text)`` on: upstream's spaCy pipeline, split over processes in fast mode."""
        if precision != "fast":
            return self._spacy
        processes = min(self.fast_mode.parse_processes, torch.get_num_threads())
        pieces = self.fast_mode.parse_pieces
        return SplitParser(self._spacy, processes, pieces) if processes > 1 or pieces > 1 else self._spacy

    def _processes(self, precision: Precision, wanted: int) -> int:
        """Over how many processes a stage shares its batches: fast mode's choice (``wanted``) on the CPU, never
        more than the worker's torch threads (its share of the cores)."""
        if precision != "fast" or self.device.type != "cpu":
            return 1
        return max(1, min(wanted, torch.get_num_threads()))

    def _run(self, text: str, parts: Components, pipeline: Pipeline, book_id: str, out_dir: Path,
             tracker: RunTracker, run: Run) -> Analysis:
        book = Book(text=text)
        timings: dict[str, float] = {}
        for stage in STAGES:
            if stage.applies(pipeline):
                timings[stage.name] = self._stage(stage.name, tracker, stage.run, book, parts, pipeline, run)
        files: dict[str, Path] = {}

        def output(*_: object) -> None:
            files.update(write_native(book, pipeline, out_dir, book_id))

        timings["output"] = self._stage("output", tracker, output, None)
        return Analysis(book_id=book_id, model=parts.name, pipeline=pipeline.names(), device=str(self.device),
                        synthetic_models=parts.manifest.synthetic, token_count=len(book.tokens),
                        timings=timings, precision=parts.precision, folder=out_dir, files=files)

    def _stage(self, name: str, tracker: RunTracker, run: Any, *args: Any) -> float:
        tracker.start(name)
        started = time.monotonic()
        with captured_stdout() as chatter, torch.no_grad():
            try:
                run(*args)
            except (Cancelled, EngineError):
                raise
            except SystemExit as exc:
                message = _last_line(chatter.getvalue())
                raise StageFailed(name, f"BookNLP gave up (exit {exc.code}): {message}") from None
            except torch.cuda.OutOfMemoryError as exc:
                raise DeviceOutOfMemory(name, f"the GPU ran out of memory: {exc}".splitlines()[0]) from exc
            except Exception as exc:
                log.exception("stage %s failed", name)
                raise StageFailed(name, f"{type(exc).__name__}: {exc}"[:500]) from exc
            finally:
                if chatter.getvalue():
                    log.debug("booknlp (%s): %s", name, chatter.getvalue().strip()[-2000:])
                release_free_memory()  # the stage's freed transients, before the next stage's arrive
        tracker.finish()
        return time.monotonic() - started


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"
