"""Upstream's gender model, with its 5.9 MB prior file parsed once per process instead of per book.

``GenderEM.__init__`` calls ``read_hyperparams`` on every run; what it builds depends only on the
file and on constants of the class, and is only read afterwards, so one parse can serve every run
(the parity tests hold this to byte-identical output).
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

        _model_class = SharedPriorGenderEM
    return _model_class
