"""Upstream's gender model, with its 5.9 MB prior file parsed once per process instead of per book,
and its EM run over the priors the book can use instead of all of them.

``GenderEM.__init__`` calls ``read_hyperparams`` on every run; what it builds depends only on the
file and on constants of the class, and is only read afterwards, so one parse can serve every run.
Its vocabulary then holds every prior term (~100K) and 25 EM epochs walk them all, though a term
only matters when one of the book's mentions is written that way: every other term's counts are
updated on their own and never read. Keeping just the book's terms, in their order, leaves the
output unchanged (the parity tests hold this to byte-identical files) and the stage ~50× faster.
"""

from __future__ import annotations

import threading
from typing import Any

from booknlp_api.models.bert import import_upstream

_priors: dict[tuple[str, str, int], tuple[dict[str, Any], dict[str, Any]]] = {}
_lock = threading.Lock()
_model_class: type | None = None


def gender_model_class() -> type:
    """A ``GenderEM`` whose prior file is read once per process and then shared (read-only)."""
    global _model_class
    if _model_class is None:
        upstream = import_upstream("booknlp.english.gender_inference_model_1").GenderEM

        class SharedPriorGenderEM(upstream):  # type: ignore[misc, valid-type]
            def read_hyperparams(self, filename: str) -> None:
                key = (filename, repr(self.genders), self.upper)
                with _lock:
                    if key not in _priors:
                        super().read_hyperparams(filename)
                        _priors[key] = (self.hyperparameters, self.honorific_priors)
                self.hyperparameters, self.honorific_priors = _priors[key]

            def build_vocab(self, tokens: Any, entities: Any, refs: Any = None) -> None:
                used = {self._prior_key(start, end, category, text, tokens) for start, end, category, text in entities}
                self.hyperparameters = {term: prior for term, prior in self.hyperparameters.items() if term in used}
                super().build_vocab(tokens, entities, refs)

            def _prior_key(self, start: int, end: int, category: str, text: str, tokens: Any) -> str:
                # The key under which upstream looks a mention's prior up (add_hyperparameters_to_counts).
                prop = category.split("_")[0]
                head = self.get_head(start, end, tokens) if prop == "NOM" else None
                word = tokens[head].text if head is not None else text
                return f"{word}\t{prop}".lower()

        _model_class = SharedPriorGenderEM
    return _model_class


def load_priors(hyperparameter_file: str, genders: list[list[str]]) -> None:
    """Parse the prior file now (model load time) rather than during the first book's gender stage."""
    gender_model_class()(hyperparameterFile=hyperparameter_file, genders=genders)
