"""Loading BookNLP's components with their BERT base taken from a local folder, never the hub.

Each upstream component calls ``BertTokenizer.from_pretrained(name)`` and
``BertModel.from_pretrained(name)`` with a hub name, then overwrites every BERT weight with
``load_state_dict``. Only the base ``config.json`` and ``vocab.txt`` matter, so while a component is
built we point those two names, inside upstream's modules, at classes that read the local folder
and build the BERT from its config alone.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from unittest import mock

log = logging.getLogger(__name__)

_UPSTREAM_MODULES = (
    "booknlp.english.tagger",
    "booknlp.english.speaker_attribution",
    "booknlp.english.bert_coref_quote_pronouns",
)


def import_upstream(module: str) -> ModuleType:
    """Import a booknlp module, sending the text it prints at import time to the debug log.

    Its ``import pkg_resources`` raises setuptools' deprecation warning, which nobody running this
    service can act on: it is dropped here rather than printed to every user's terminal.
    """
    import importlib

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        imported = importlib.import_module(module)
    if buffer.getvalue().strip():
        log.debug("booknlp import: %s", buffer.getvalue().strip())
    return imported


def _checkpoint_bert_class() -> type:
    from transformers import BertModel

    class CheckpointBertModel(BertModel):
        """A BertModel whose weights are all about to be overwritten by a checkpoint."""

        def _init_weights(self, module: object) -> None:
            # Called for the rows resize_token_embeddings adds; the checkpoint writes them.
            return None

        def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None,
                                    mean_resizing: bool = True) -> object:
            return super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing=False)

    return CheckpointBertModel


def _local_classes(model_dir: Path, initialise: bool) -> tuple[type, type]:
    from transformers import BertConfig, BertModel, BertTokenizer

    bert_class = BertModel if initialise else _checkpoint_bert_class()

    def folder(name: str) -> str:
        path = model_dir / "bert" / name.replace("/", "_", 1)
        if not (path / "config.json").is_file() or not (path / "vocab.txt").is_file():
            raise FileNotFoundError(f"{path} lacks config.json or vocab.txt for BERT base {name!r}")
        return str(path)

    class LocalBertTokenizer:
        @staticmethod
        def from_pretrained(name: str, **kwargs: object) -> BertTokenizer:
            return BertTokenizer.from_pretrained(folder(name), local_files_only=True, **kwargs)

    class LocalBertModel:
        @staticmethod
        def from_pretrained(name: str, **kwargs: object) -> BertModel:
            config = BertConfig.from_pretrained(folder(name), local_files_only=True)
            # from_pretrained returns a model in eval mode; keep that behaviour.
            return bert_class(config).eval()

    return LocalBertTokenizer, LocalBertModel


@contextlib.contextmanager
def local_bert(model_dir: Path, initialise: bool = True) -> Iterator[None]:
    """Within this block upstream components take their BERT base from ``model_dir/bert/``.

    ``initialise=False`` when a checkpoint will overwrite every weight: modules are built without
    random initialisation (their parameters hold whatever memory they were given until then).
    """
    modules = [import_upstream(name) for name in _UPSTREAM_MODULES]
    tokenizer_cls, model_cls = _local_classes(model_dir, initialise)
    saved = [(module, module.BertTokenizer, module.BertModel) for module in modules]
    try:
        for module in modules:
            module.BertTokenizer = tokenizer_cls
            module.BertModel = model_cls
        if initialise:
            yield
        else:
            from transformers.modeling_utils import no_init_weights

            with no_init_weights():
                yield
    finally:
        for module, tokenizer, model in saved:
            module.BertTokenizer = tokenizer
            module.BertModel = model


@contextlib.contextmanager
def built_on_cpu() -> Iterator[None]:
    """Within this block upstream constructors place their weights on the CPU.

    They pick "cuda if torch.cuda.is_available()"; answering "no" while building lets the caller
    move the component to the device it chose (or keep it on the CPU) afterwards.
    """
    import torch

    with mock.patch.object(torch.cuda, "is_available", return_value=False), \
            contextlib.redirect_stdout(io.StringIO()):
        yield
