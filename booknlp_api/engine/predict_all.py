"""``Tagger.predict_all`` with its BIO steps table-driven and its Viterbi in numpy, byte-identical to upstream.

The neural part (BERT, the three nested-entity LSTMs, the event and supersense heads) is upstream's own
modules called in upstream's order on the same tensors; only the Python around them is replaced
(``get_layer_transformation``, ``viterbi_decode``). Tags come back as int64 arrays ``[batch, length]``
instead of lists of lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from booknlp_api.engine.get_layer_transformation import (
    Ints,
    TagTable,
    fix,
    get_layer_transformation,
    restore_missing,
)
from booknlp_api.engine.viterbi_decode import viterbi_decode


@dataclass(frozen=True)
class Predictions:
    entity_layers: tuple[Ints, Ints, Ints] | None
    event_logits: torch.Tensor | None
    supersenses: Ints | None


def _decode(crf: Any, tag_space: torch.Tensor, lens: Ints) -> Ints:
    transitions = crf.transitions.detach().cpu().numpy()
    _, paths = viterbi_decode(transitions, crf.start_idx, crf.stop_idx, tag_space.detach().cpu().numpy(), lens)
    return paths


def predict_all(tagger: Any, tables: tuple[TagTable, TagTable], wn: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor, transforms: torch.Tensor, lens: torch.Tensor,
                do_event: bool = True, do_entities: bool = True, do_ss: bool = True) -> Predictions:
    """Upstream's ``predict_all`` for one batch; ``tables`` = (entity table, supersense table)."""
    device = tagger.device
    hidden_states = tagger.bert(input_ids.to(device), token_type_ids=None, attention_mask=attention_mask.to(device),
                                output_hidden_states=True, return_dict=False)[2]
    if tagger.num_layers == 4:
        all_layers = torch.cat((hidden_states[-1], hidden_states[-2], hidden_states[-3], hidden_states[-4]), 2)
    elif tagger.num_layers == 2:
        all_layers = torch.cat((hidden_states[-1], hidden_states[-2]), 2)
    reduced = torch.matmul(transforms.to(device), all_layers)[:, 1:, :]
    lens_minus_2 = lens.numpy().astype(np.int64) - 2
    entities = _entities(tagger, tables[0], reduced, lens_minus_2) if do_entities else None
    events = None
    if do_event:
        out, _ = tagger.flat_lstm(reduced)
        events = tagger.flat_classifier(out.contiguous().view(-1, out.shape[2]))
    supersenses = None
    if do_ss:
        wn_embeds = tagger.wn_embedding(wn.to(device))[:, 1:, :]
        lstm_out, _ = tagger.supersense_lstm1(torch.cat([reduced, wn_embeds], axis=2))
        paths = _decode(tagger.supersense_crf, tagger.supersense_hidden2tag1(lstm_out), lens_minus_2)
        supersenses = fix(paths, tables[1])
    return Predictions(entities, events, supersenses)


def _entities(tagger: Any, table: TagTable, reduced: torch.Tensor, lens: Ints) -> tuple[Ints, Ints, Ints]:
    device = tagger.device
    lstm_out1, _ = tagger.lstm1(reduced)
    layer1 = get_layer_transformation(_decode(tagger.crf, tagger.hidden2tag1(lstm_out1), lens), table)
    lstm_out2, _ = tagger.lstm2(torch.matmul(torch.from_numpy(layer1.index).to(device), lstm_out1))
    layer2 = get_layer_transformation(
        _decode(tagger.crf, tagger.hidden2tag2(lstm_out2), np.array(layer1.lens, np.int64)), table)
    lstm_out3, _ = tagger.lstm3(torch.matmul(torch.from_numpy(layer2.index).to(device), lstm_out2))
    tags3 = fix(_decode(tagger.crf, tagger.hidden2tag3(lstm_out3), np.array(layer2.lens, np.int64)), table)
    # put back the tokens that earlier layers merged, in upstream's order (layer 2's into layer 3 first)
    tags3 = restore_missing(restore_missing(tags3, layer2.missing, table), layer1.missing, table)
    tags2 = restore_missing(layer2.tags, layer1.missing, table)
    return layer1.tags, tags2, tags3
