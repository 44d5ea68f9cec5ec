"""Our byte-identical replacements for upstream hotspots, installed on a component instance when it is built.

Only the instance changes (attributes that shadow upstream's methods); upstream's modules and classes stay
as they are, so upstream remains callable unchanged (equivalence tests, the reference runner).
"""

from __future__ import annotations

from typing import Any

from booknlp_api.engine.entity_tag import make_tag
from booknlp_api.engine.tag_all import make_tag_all


def install(component: str, built: Any) -> None:
    if component == "entity":
        built.model.tag_all = make_tag_all(built.model)
        built.tag = make_tag(built)
