"""Which pipes a request asks for, checked before any work starts (upstream's names and rules)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from booknlp_api.engine.errors import InvalidPipeline
from booknlp_api.vocabulary import PIPES, REQUIRES
from booknlp_api.vocabulary import Pipe as Pipe  # re-exported: the names live in the light vocabulary module


@dataclass(frozen=True)
class Pipeline:
    pipes: frozenset[str]

    def __contains__(self, pipe: object) -> bool:
        return pipe in self.pipes

    @property
    def tags(self) -> bool:
        """Whether the tagger (entities, supersenses, events) runs at all."""
        return bool(self.pipes & {"entity", "supersense", "event"})

    @property
    def components(self) -> tuple[str, ...]:
        """Neural components to load: entity (tagger), quote (speakers), coref."""
        needed = []
        if self.tags:
            needed.append("entity")
        needed += [pipe for pipe in ("quote", "coref") if pipe in self.pipes]
        return tuple(needed)

    def names(self) -> list[str]:
        return [pipe for pipe in PIPES if pipe in self.pipes]


def parse_pipeline(pipes: Iterable[str] | str | None) -> Pipeline:
    """Validate a pipe list (a list or upstream's comma-separated string); None means all pipes."""
    if pipes is None:
        return Pipeline(frozenset(PIPES))
    items = [p.strip() for p in pipes.split(",")] if isinstance(pipes, str) else [p.strip() for p in pipes]
    items = [p for p in items if p]
    if not items:
        raise InvalidPipeline(f"the pipeline is empty; choose from {', '.join(PIPES)}")
    unknown = sorted({p for p in items if p not in PIPES})
    if unknown:
        raise InvalidPipeline(f"unknown pipe(s) {', '.join(unknown)}; valid pipes are {', '.join(PIPES)}")
    chosen = frozenset(items)
    problems = [
        f"{pipe} requires {', '.join(missing)}"
        for pipe, needs in REQUIRES.items()
        if pipe in chosen and (missing := [n for n in needs if n not in chosen])
    ]
    if problems:
        raise InvalidPipeline("; ".join(problems))
    return Pipeline(chosen)
