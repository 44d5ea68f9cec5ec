"""Replaces ``LitBankCoref.test`` (coref's driver) with one that does less work around the model.

Upstream, on every book, re-reads ``aliases.txt`` into a new ``NameCoref`` (it is only read, never
changed: one built at load time serves every book), and finds each quoted mention's quote by
scanning every quote of the book (mentions in quotes x quotes: tens of millions of comparisons on
a novel). Here each token position maps to the last quote that covers it, which is the quote
upstream's scan ends on. Everything else is upstream's code, in upstream's order.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def make_test(coref: Any, names: Any) -> Callable[..., tuple[list[int], list[Any]]]:
    """``test`` for one ``LitBankCoref`` instance, with ``names`` (a ``NameCoref``) built once."""

    def test(test_doc: Any, test_ents: list[list[Any]], max_words: int, max_ents: int, refs: Any, ref_gender: Any,
             attributed_quotations: list[Any], quotes: list[tuple[int, int]]) -> tuple[list[int], list[Any]]:
        global_entities = [ent for ents in test_ents for ent in ents]
        covering: dict[int, int] = {}
        for idx, (q_start, q_end) in enumerate(quotes):
            for position in range(q_start, q_end + 1):
                covering[position] = idx
        for ent in global_entities:
            if ent.in_quote and ent.global_start in covering:
                ent.quote_mention = attributed_quotations[covering[ent.global_start]]

        model = coref.model
        (test_matrix, test_index, test_token_positions, _, test_starts, test_ends, test_widths, test_data,
         test_masks, test_transforms, _) = model.get_data(test_doc, test_ents, max_ents, max_words)
        assignments = model.forward(test_matrix, test_index, existing=refs, token_positions=test_token_positions,
                                    starts=test_starts, ends=test_ends, widths=test_widths, input_ids=test_data,
                                    attention_mask=test_masks, transforms=test_transforms, ref_genders=ref_gender,
                                    entities=global_entities)
        e_list = [(ent.global_start, ent.global_end, f"{ent.proper}_{ent.ner_cat}", ent.text)
                  for ent in global_entities]
        assignments = names.cluster_noms(e_list, assignments)
        if any(assignment == -1 for assignment in assignments):
            print(assignments)
            sys.exit(1)
        return assignments, global_entities

    return test
