"""Exact and fast precision.

``exact`` (the default) runs upstream's computation unchanged: native files byte-identical to
``BookNLP.process()``. ``fast`` may change bytes for speed. Each fast option is a switch on
``FastMode``; ``FAST`` holds the ones we ship, chosen by ``benchmarks.fast_vs_exact``: an option
ships only while every agreement with exact mode (entities, supersenses, events, quote speakers,
coreference, characters) stays at or above 98% on every benchmark text (docs/PERFORMANCE.md).

A fast model is a separate set of components (built lazily, on first use): applying an option
changes the component instance, and the exact components in the same process stay untouched. A
component no option changes (``FastMode.changes_component``) is exact's instance, shared, not a copy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from booknlp_api.engine.speaker_int8 import RecheckedSpeakerForward, int8_quietly
from booknlp_api.vocabulary import PRECISIONS as PRECISIONS  # re-exported: defined in the light vocabulary module
from booknlp_api.vocabulary import Precision as Precision

TAGGER_LSTMS = {"lstm1": "first entity layer's", "lstm2": "second entity layer's", "lstm3": "third entity layer's",
                "flat_lstm": "event", "supersense_lstm1": "supersense"}
"""Upstream ``Tagger``'s LSTMs, and what each tags."""


@dataclass(frozen=True)
class FastMode:
    """What fast mode changes; every option off is exact mode's computation."""

    int8_cpu: bool = False
    """int8 dynamic quantisation of every BERT's linear layers when running on the CPU."""
    half_cuda: torch.dtype | None = None
    """Autocast every BERT to this dtype (float16 or bfloat16) when running on CUDA."""
    half_cpu: torch.dtype | None = None
    """The same on the CPU, whatever the CPU: to measure on any machine what half precision does to agreement
    (where the CPU has no half-precision instructions it is emulated, and slow)."""
    bf16_cpu: bool = False
    """Autocast every BERT to bfloat16 on a CPU that computes it natively (``cpu_computes_bf16``: AVX-512 BF16
    or AMX), where a bfloat16 matrix product runs about twice as fast as float32; the int8 options then stay
    off (bfloat16 covers the same BERTs). Elsewhere nothing changes."""
    parse_processes: int = 1
    """spaCy parses the book cut at paragraph breaks in up to this many processes at once (never more than
    the worker's torch threads, its share of the cores); 1: one whole-book parse, as upstream."""
    parse_pieces: int = 1
    """Each parse process cuts its share at paragraph breaks into up to this many pieces and parses them with
    spaCy's ``nlp.pipe`` (cheaper than one long Doc); 1: its share as one Doc."""
    int8_coref_cpu: bool = False
    """int8 dynamic quantisation of the coref BERT's linear layers only, on the CPU (``int8_cpu`` does all three)."""
    int8_quote_cpu: bool = False
    """On the CPU, quote attribution scores with an int8 copy of the speaker BERT, and scores again in float32
    every quote whose best two candidates come out close (``speaker_int8.py``)."""
    bf16_lstms_cpu: tuple[str, ...] = ()
    """With ``bf16_cpu`` in force, these of the tagger's LSTMs (``TAGGER_LSTMS``) run under bfloat16 autocast too
    (about 2x on this CPU); their outputs go on to the heads and CRFs as float32."""
    tag_processes: int = 1
    """On the CPU, the tagger shares its batches over up to this many processes, each on one torch thread
    (never more than the worker's torch threads); 1: all in this process, as upstream."""
    quote_processes: int = 1
    """On the CPU, attribution shares its speaker batches the same way (``speaker_scores_forked.py``)."""
    quote_by_length: bool = False
    """Attribution scores its quote windows in batches of similar length instead of upstream's batches in book
    order (``speaker_windows_by_length.py``): less padding for self-attention."""

    def changes_models(self, device: torch.device) -> bool:
        """Whether the models themselves differ from exact mode's on ``device`` (then fast needs its own set)."""
        return any(self.changes_component(component, device) for component in ("entity", "quote", "coref"))

    def changes_component(self, component: str, device: torch.device) -> bool:
        """Whether ``component`` (entity, quote or coref) differs from exact mode's on ``device``: fast mode's
        set shares exact's instance of every component it does not change."""
        return self.quantises(component, device) or (component == "quote" and self.rechecks_quotes(device)) or \
            self.half(device) is not None

    def half(self, device: torch.device) -> torch.dtype | None:
        """The half-precision type the BERTs autocast to on ``device``, if any."""
        if device.type == "cuda":
            return self.half_cuda
        if self.half_cpu is not None:
            return self.half_cpu
        return torch.bfloat16 if self.bf16_cpu and cpu_computes_bf16() else None

    def quantises(self, component: str, device: torch.device) -> bool:
        """Whether ``component``'s BERT runs in int8 on ``device`` (the CPU only, and not beside bfloat16)."""
        if device.type != "cpu" or (self.bf16_cpu and self.half(device) is not None):
            return False
        return self.int8_cpu or (self.int8_coref_cpu and component == "coref")

    def rechecks_quotes(self, device: torch.device) -> bool:
        """Whether attribution scores in int8 and rechecks close quotes in float32 (``speaker_int8.py``)."""
        return device.type == "cpu" and self.int8_quote_cpu and not self.int8_cpu

    def describe(self, device: torch.device) -> list[str]:
        """The options this mode switches on for ``device``, in words (for /v1/info and benchmarks)."""
        words = []
        if self.parse_processes > 1:
            words.append(f"spaCy parse split at paragraph breaks over up to {self.parse_processes} processes")
        if device.type == "cpu" and self.tag_processes > 1:
            words.append(f"tagger batches shared over up to {self.tag_processes} single-thread processes")
        if device.type == "cpu" and self.quote_processes > 1:
            words.append(f"speaker batches shared over up to {self.quote_processes} single-thread processes")
        if self.quote_by_length:
            words.append("quote windows scored in batches of similar length")
        if self.parse_pieces > 1:
            words.append(f"each parse process parses its share as up to {self.parse_pieces} pieces (nlp.pipe)")
        if self.int8_cpu and self.quantises("entity", device):
            words.append("int8 dynamic quantisation of the BERTs' linear layers")
        elif self.quantises("coref", device):
            words.append("int8 dynamic quantisation of the coref BERT's linear layers")
        if self.rechecks_quotes(device):
            words.append("quote speakers scored with an int8 speaker BERT, close decisions scored again in float32")
        half = self.half(device)
        if half is not None:
            words.append(f"BERTs run under {_dtype_name(half)} autocast")
        lstms = self.lstms_in_bf16(device)
        if lstms:
            words.append(f"the tagger's {', '.join(TAGGER_LSTMS[name] for name in lstms)} LSTMs run under bfloat16 "
                         "autocast")
        return words

    def lstms_in_bf16(self, device: torch.device) -> tuple[str, ...]:
        """The tagger's LSTMs that run under bfloat16 autocast on ``device`` (a CPU computing it natively)."""
        native = device.type == "cpu" and self.bf16_cpu and cpu_computes_bf16()
        return self.bf16_lstms_cpu if native else ()


@functools.cache
def cpu_computes_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (oneDNN's check: AVX-512 BF16, or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


FAST = FastMode(parse_processes=2, int8_coref_cpu=True, tag_processes=2, quote_processes=2, quote_by_length=True,
                bf16_cpu=True, bf16_lstms_cpu=("flat_lstm", "supersense_lstm1"))
"""The fast mode we ship (see the module docstring for the rule; figures in docs/PERFORMANCE.md):

- the parse split over two processes: every benchmark novel parsed to the same tokens as one whole-book
  parse (agreement 100%);
- on the CPU, the tagger's batches shared over two single-thread processes (the same predictions; the
  tagger stage 12-19% faster on two cores), and attribution's speaker batches likewise (the same scores;
  the stage 14% faster on *The Call of the Wild*), from 128 quote windows;
- quote windows scored in batches of similar length (quote speakers 99.3-99.9% on the four novels;
  attribution 11% faster on *A Christmas Carol*);
- on a CPU that computes bfloat16 natively (AVX-512 BF16, AMX), the three BERTs under bfloat16 autocast
  (lowest agreement 99.32%, quote speakers on *The Call of the Wild*; whole novels 1.3-1.5x faster than
  exact), and the tagger's event and supersense LSTMs too (lowest agreement 98.95%, supersenses on *A
  Christmas Carol*; its three entity LSTMs in bfloat16 took coref B-cubed there to 97.87%);
- on any other CPU, int8 quantisation of the coref BERT instead (lowest agreement 99.38%, coref B-cubed on
  *The Call of the Wild*; the coref stage ~7% faster).

int8 of all three BERTs fell below 98% (quote speakers 95.3%, supersenses 97.7% on Pride and Prejudice),
and float16/bfloat16 autocast on a GPU has no agreement measured yet (scripts/gpu-benchmark.sh --fast fp16
measures it there). Fast mode holds its own copy of each component an option changes (on a bfloat16 CPU all
three, otherwise the coref one) and shares exact mode's others; on a GPU it shares all."""


def make_fast(component: str, built: Any, device: torch.device, mode: FastMode) -> None:
    """Apply ``mode``'s model options to one freshly built component (``entity``, ``quote`` or ``coref``:
    its ``model.bert``), in place."""
    bert = built.model.bert
    if mode.quantises(component, device):
        # Quantised in place: hooks registered later on this module (progress) see the new layers.
        with int8_quietly():
            torch.ao.quantization.quantize_dynamic(bert, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    if component == "quote" and mode.rechecks_quotes(device):
        built.model.forward = RecheckedSpeakerForward(built.model, built.model.forward)
    half = mode.half(device)
    if half is not None:
        bert.forward = _autocast(bert.forward, device.type, half)
    if component == "entity":
        for lstm in mode.lstms_in_bf16(device):
            module = getattr(built.model, lstm)
            module.forward = _autocast(module.forward, device.type, torch.bfloat16)


def _autocast(forward: Callable[..., Any], device_type: str, dtype: torch.dtype) -> Callable[..., Any]:
    def autocast_forward(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type=device_type, dtype=dtype):
            out = forward(*args, **kwargs)
        return _as_float32(out)

    return autocast_forward


def _as_float32(value: Any) -> Any:
    """Upstream's heads after the BERT are float32: hand them float32 (tensors, tuples, model outputs)."""
    if torch.is_tensor(value):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, Mapping):
        for key in list(value.keys()):
            value[key] = _as_float32(value[key])
        return value
    if isinstance(value, tuple):
        return tuple(_as_float32(item) for item in value)
    return value


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
