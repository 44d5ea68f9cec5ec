"""Replaces ``BERTCorefTagger.forward`` (coref's mention linking) at inference with the same assignments, its
scoring network run on many mentions per call instead of one.

Upstream links mentions one at a time (outside quotes first, then inside), and for each pronoun it builds its
candidates' features in Python and runs a three-layer scorer on them: some fifteen small torch calls per
mention, about a second of a novel. Only one feature depends on the links made so far (whether a candidate
is linked to the speaker of the quote a mention sits in), and it takes two values there; everything else is
known before the loop. So every mention's rows, with both values where needed, are scored before the
loop, and the loop, upstream's in the same order, reads the scores.

Why the scores are bit-identical: a linear layer computes each row of its output from that row of its input
alone, and on the CPUs measured gives it the same bits in any call of 12 rows or more. The first two layers
score mentions together in calls of exactly ``CHUNK_ROWS`` rows (a few MB of features at a time);
``row_counts_independent`` checks, when the model is installed, for which candidate counts (1-20) a
mention's own call (upstream's) gives the same bits as such a call, and mentions with any other count are
scored on their own rows, as upstream scores them. The last layer (one output: a matrix-vector product,
whose bits depend on the row count) and ``tanh`` (its vectorised kernel rounds a tensor's last elements
on a scalar path) run per mention, on tensors shaped as upstream's; the additions are elementwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from booknlp_api.models.bert import import_upstream

MAX_PREVIOUS_MENTIONS = 20
"""Candidates a mention considers (upstream's constant in ``forward``)."""
CHUNK_ROWS = 1024
"""Rows per call when mentions are scored together: every such call has this shape (the last one padded),
the shape ``row_counts_independent`` compares a mention's own call with."""
FIRST_PERSON = frozenset({"i", "me", "my", "myself"})


def applies(model: Any) -> bool:
    """Whether this replacement runs for ``model`` (a ``BERTCorefTagger``): on the CPU (its index tensors are CPU's)."""
    return next(model.parameters()).device.type == "cpu"


def row_counts_independent(model: Any) -> frozenset[int]:
    """Candidate counts 1..20 for which the scorer's first two linear layers give a mention's rows the same bits
    in a call of that many rows (upstream's) as in a call of ``CHUNK_ROWS`` rows, on this machine. (The last
    layer, 150 -> 1, is a matrix-vector product whose bits depend on the row count: it runs per mention.)"""
    if not applies(model):
        return frozenset()
    generator = torch.Generator().manual_seed(0)
    counts = set(range(1, MAX_PREVIOUS_MENTIONS + 1))
    with torch.inference_mode():
        for layer in (model.mention_mention1, model.mention_mention2):
            rows = torch.randn(CHUNK_ROWS, layer.in_features, generator=generator)
            whole = layer(rows)
            for n in sorted(counts):
                if not all(torch.equal(layer(rows[start:start + n]), whole[start:start + n])
                           for start in (0, 1, CHUNK_ROWS // 2 + 3, CHUNK_ROWS - n)):
                    counts.discard(n)
    return frozenset(counts)


Layered = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]


def _whole(layer: torch.nn.Module, rows: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = layer(rows)
    return out


def _padded(layer: torch.nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """``layer(rows)`` for at most ``CHUNK_ROWS`` rows, called on exactly ``CHUNK_ROWS`` rows (zeros below)."""
    count = rows.shape[0]
    out: torch.Tensor = layer(torch.cat((rows, rows.new_zeros((CHUNK_ROWS - count, rows.shape[1]))), 0))
    return out[:count]


@dataclass
class Mention:
    """What linking one mention needs that does not depend on earlier links."""

    index: int
    cands: np.ndarray
    buckets: np.ndarray
    """Each candidate's distance bucket (``get_distance_bucket``)."""
    speaker_dependent: bool
    """Whether its candidates' same-speaker feature depends on links (it is in a quote with a speaker)."""
    scores: list[torch.Tensor] = field(default_factory=list)
    """Final scores of its candidates per same-speaker value: [2] or [0, 1]."""


class CorefForward:
    """A drop-in ``forward`` for one ``BERTCorefTagger`` instance."""

    def __init__(self, model: Any, batched_counts: frozenset[int]) -> None:
        self.model = model
        self.upstream = import_upstream("booknlp.english.bert_coref_quote_pronouns").BERTCorefTagger.forward
        self.batched_counts = batched_counts

    def __call__(self, matrix: Any, index: Any, existing: Any = None, truth: Any = None, token_positions: Any = None,
                 starts: Any = None, ends: Any = None, widths: Any = None, input_ids: Any = None,
                 attention_mask: Any = None, transforms: Any = None, entities: Any = None,
                 ref_genders: Any = None) -> Any:
        model = self.model
        ref_genders = {} if ref_genders is None else ref_genders
        if truth is not None or model.training:
            return self.upstream(model, matrix, index, existing=existing, truth=truth, token_positions=token_positions,
                                 starts=starts, ends=ends, widths=widths, input_ids=input_ids,
                                 attention_mask=attention_mask, transforms=transforms, entities=entities,
                                 ref_genders=ref_genders)
        properties: dict[Any, dict[str, Any]] = {}
        if existing is not None:
            for idx, val in enumerate(existing):
                if val != -1 and val is not None:
                    model.add_property(properties, val, entities[idx], ref_genders)
        reps = self._mention_reps(matrix, index, starts, ends, widths, input_ids, attention_mask, transforms, entities)
        unary = model.unary3(model.tanh(model.unary2(model.tanh(model.unary1(reps)))))
        plan = self._plan(entities, existing, len(reps))
        spans = np.array([(entity.global_start, entity.global_end) for entity in entities], dtype=np.int64)
        self._score(plan, reps, unary, spans.reshape(-1, 2))
        return self._link(plan, entities, existing, properties, ref_genders)

    def _mention_reps(self, matrix: Any, index: Any, starts: Any, ends: Any, widths: Any, input_ids: Any,
                      attention_mask: Any, transforms: Any, entities: Any) -> torch.Tensor:
        found, cur = [], 0
        for b in range(len(matrix)):
            quotes = torch.LongTensor([1 if entity.in_quote else 0 for entity in entities[cur:cur + len(starts[b])]])
            cur += len(starts[b])
            found.append(self.model.get_mention_reps(
                input_ids=input_ids[b], attention_mask=attention_mask[b], starts=starts[b], ends=ends[b],
                index=index[b], widths=widths[b], quotes=quotes, transforms=transforms[b], matrix=matrix[b],
                doTrain=False))
        return torch.cat(found, 0)

    def _plan(self, entities: Any, existing: Any, count: int) -> dict[int, Mention]:
        """The mentions upstream's loop scores (it may still skip a first-person one in a quote), by index."""
        model = self.model
        plan = {}
        for i in range(1, count):
            entity = entities[i]
            if existing is not None and existing[i] != -1:
                continue
            if entity.proper != "PRON" and model.pronominalCorefOnly:
                continue
            first = max(0, i - MAX_PREVIOUS_MENTIONS)
            if not entity.in_quote:
                cands, dist = model.get_non_quote_cands(first, i, entities)
            else:
                cands, dist = model.get_closest_entities(first, i, entities)
            cands, dist = cands[-MAX_PREVIOUS_MENTIONS:], dist[-MAX_PREVIOUS_MENTIONS:]
            if len(cands) > 0:
                plan[i] = Mention(i, cands, model.vec_get_distance_bucket(dist),
                                  entity.in_quote and entity.quote_mention is not None)
        return plan

    def _score(self, plan: dict[int, Mention], reps: torch.Tensor, unary: torch.Tensor, spans: np.ndarray) -> None:
        """Every planned mention's candidate scores, for each same-speaker value it can see."""
        groups: list[tuple[Mention, int]] = [(mention, value) for mention in plan.values()
                                             for value in ((0, 1) if mention.speaker_dependent else (2,))]
        chunk: list[tuple[Mention, int]] = []
        rows = 0
        for group in groups:
            count = len(group[0].cands)
            if count not in self.batched_counts:
                # on its own rows, as upstream scores it
                self._add_scores([group], self._scorer(self._features([group], reps, spans), [count], _whole),
                                 unary)
                continue
            if rows + count > CHUNK_ROWS:
                self._score_chunk(chunk, reps, unary, spans)
                chunk, rows = [], 0
            chunk.append(group)
            rows += count
        if chunk:
            self._score_chunk(chunk, reps, unary, spans)

    def _score_chunk(self, chunk: list[tuple[Mention, int]], reps: torch.Tensor, unary: torch.Tensor,
                     spans: np.ndarray) -> None:
        """Groups of at most ``CHUNK_ROWS`` rows scored in one call per layer (a few MB: it stays in cache)."""
        self._add_scores(chunk, self._scorer(self._features(chunk, reps, spans),
                                             [len(mention.cands) for mention, _ in chunk], _padded), unary)

    @staticmethod
    def _add_scores(groups: list[tuple[Mention, int]], scores: list[torch.Tensor], unary: torch.Tensor) -> None:
        for (mention, _), found in zip(groups, scores, strict=True):
            # upstream: scores + unary of the mention + unary of each candidate, elementwise in that order
            mention.scores.append((found + unary[mention.index] + unary[mention.cands]).squeeze(-1))

    def _features(self, groups: list[tuple[Mention, int]], reps: torch.Tensor, spans: np.ndarray) -> torch.Tensor:
        """Upstream's scorer input for every (mention, candidate) row of ``groups``, in order; ``spans`` holds
        each mention's (global_start, global_end)."""
        model = self.model
        sizes = [len(mention.cands) for mention, _ in groups]
        mentions = np.repeat([mention.index for mention, _ in groups], sizes).astype(np.int64)
        speakers = np.repeat([value for _, value in groups], sizes).astype(np.int64)
        cands = np.concatenate([mention.cands for mention, _ in groups]).astype(np.int64)
        buckets = np.concatenate([mention.buckets for mention, _ in groups]).astype(np.int64)
        (start, end), (cand_start, cand_end) = spans[mentions].T, spans[cands].T
        nested_in_cand = (start >= cand_start) & (end < cand_end)  # upstream's nest1
        cand_nested_in = (cand_start >= start) & (cand_end < end)  # upstream's nest2
        cp, targets = reps[torch.from_numpy(mentions)], reps[torch.from_numpy(cands)]
        return torch.cat((cp, targets, cp * targets, model.distance_embeddings(torch.from_numpy(buckets)),
                          model.nested_embeddings(torch.from_numpy(nested_in_cand.astype(np.int64))),
                          model.nested_embeddings(torch.from_numpy(cand_nested_in.astype(np.int64))),
                          model.speaker_embeddings(torch.from_numpy(speakers))), 1)

    def _scorer(self, features: torch.Tensor, sizes: list[int], call: Layered) -> list[torch.Tensor]:
        """The three-layer scorer over ``features`` (the first two layers applied by ``call``), ``tanh`` and the
        last layer on each block of ``sizes`` rows (one per mention and same-speaker value), as upstream
        applies them to a mention's rows."""
        model = self.model
        ends = np.cumsum(sizes).tolist()
        blocks = list(zip([0, *ends[:-1]], ends, strict=True))
        hidden = call(model.mention_mention1, features)
        hidden = call(model.mention_mention2, torch.cat([model.tanh(hidden[start:end]) for start, end in blocks], 0))
        return [model.mention_mention3(model.tanh(hidden[start:end])) for start, end in blocks]

    def _link(self, plan: dict[int, Mention], entities: Any, existing: Any, properties: dict[Any, Any],
              ref_genders: Any) -> list[Any]:
        """Upstream's linking loop, in its order, reading the scores."""
        model = self.model
        curid = -1
        if existing is not None:
            for r in existing:
                if r > curid:
                    curid = r
        curid += 1
        assignments: list[Any] = [None] * len(entities)
        for in_quote in (False, True):
            for i, entity in enumerate(entities):
                if entity.in_quote != in_quote:
                    continue
                if existing is not None and existing[i] != -1:
                    assignments[i] = existing[i]
                    continue
                if entity.proper != "PRON" and model.pronominalCorefOnly:
                    assignments[i] = curid
                    curid += 1
                    continue
                mention = plan.get(i)
                if mention is None:  # the first mention, or one without candidates: a new entity
                    assignments[i] = curid
                    curid += 1
                    continue
                speaker = entity.quote_mention
                if speaker is not None and assignments[speaker] is not None \
                        and entity.text.lower() in FIRST_PERSON and entity.in_quote:
                    assignments[i] = assignments[speaker]
                    continue
                preds = self._preds(mention, assignments, speaker)
                assignment = None
                for cand_idx in torch.argsort(preds, descending=True).tolist():
                    if preds[cand_idx] > 0:
                        cand = int(mention.cands[cand_idx])
                        cand_assignment = assignments[cand]
                        if cand_assignment is None:
                            print("problem!", cand, preds[cand_idx], cand_assignment, i, in_quote, assignments,
                                  torch.sort(preds, descending=True))
                            sys.exit(1)
                        if model.is_compatible(entities[cand], cand_assignment, properties, entity, ref_genders,
                                               preds[cand_idx]):
                            assignment = cand_assignment
                            model.add_property(properties, cand_assignment, entity, ref_genders)
                            break
                    else:
                        assignment = curid
                        curid += 1
                        break
                if assignment is None:
                    assignment = curid
                    curid += 1
                assignments[i] = assignment
        return assignments

    @staticmethod
    def _preds(mention: Mention, assignments: list[Any], speaker: int | None) -> torch.Tensor:
        if not mention.speaker_dependent:
            return mention.scores[0]
        speaker_assignment = assignments[speaker] if speaker is not None else None
        same = torch.tensor([assignments[int(c)] == speaker_assignment for c in mention.cands])
        return torch.where(same, mention.scores[1], mention.scores[0])
