"""CRF Viterbi decoding in numpy, a byte-identical replacement for ``booknlp.common.crf.CRF.viterbi_decode``.

Upstream runs a dozen small torch operations per time step; on a whole novel that per-call overhead,
not the arithmetic, is what costs. Here the same float32 operations run in numpy in the same order
(``mask * next + (1 - mask) * current``, then the stop transition added at each sequence's last
step), so every score is bit-identical, and ``argmax`` keeps the first maximum as torch's ``max`` does,
so ties resolve to the same label.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


def viterbi_decode(transitions: Floats, start_idx: int, stop_idx: int, logits: Floats,
                   lens: Ints) -> tuple[Floats, Ints]:
    """Best label path per sequence: ``(scores [batch], paths [batch, seq_len])``, as upstream returns.

    ``transitions`` is the CRF's ``[n_labels, n_labels]`` matrix (``transitions[next, previous]``),
    ``logits`` ``[batch, seq_len, n_labels]``, ``lens`` the real length of each sequence; positions past
    a sequence's length are decoded too (upstream keeps them, and later steps read them).
    """
    batch, seq_len, n_labels = logits.shape
    transitions = np.ascontiguousarray(transitions, dtype=np.float32)
    logits = np.asarray(logits, dtype=np.float32)
    vit = np.full((batch, n_labels), -10000, dtype=np.float32)
    vit[:, start_idx] = 0
    c_lens = np.asarray(lens, dtype=np.int64).copy()
    stop = transitions[stop_idx][None, :]
    pointers = np.empty((seq_len, batch, n_labels), dtype=np.int64)
    one = np.float32(1)
    for t in range(seq_len):
        summed = vit[:, None, :] + transitions[None, :, :]
        best = summed.argmax(axis=2)
        pointers[t] = best
        vit_nxt = np.take_along_axis(summed, best[:, :, None], axis=2)[:, :, 0] + logits[:, t]
        mask = (c_lens > 0).astype(np.float32)[:, None]
        vit = mask * vit_nxt + (one - mask) * vit
        mask = (c_lens == 1).astype(np.float32)[:, None]
        vit = vit + mask * stop
        c_lens -= 1
    idx = vit.argmax(axis=1)
    scores = vit[np.arange(batch), idx]
    paths = np.empty((batch, seq_len), dtype=np.int64)
    rows = np.arange(batch)
    for t in range(seq_len - 1, -1, -1):
        paths[:, t] = idx
        idx = pointers[t][rows, idx]
    return scores, paths
