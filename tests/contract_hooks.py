"""Schemathesis hooks for tests/test_contract.py (loaded through ``SCHEMATHESIS_HOOKS``).

A multipart part is bytes on the wire: when the fuzzer "violates" a text field's type with a number or a
boolean, ``137`` or ``false`` reaches the server as the text ``"137"`` or ``"false"``, which is a valid
book (or book id). No server can tell the two apart, so such cases are dropped instead of reported; every
other mutation of these forms runs. Likewise a one-value field "violated" with a list of no value or one value
goes on the wire as no part or one part, exactly as a valid form without the field or with that value.
"""

from __future__ import annotations

from typing import Any

import schemathesis

TEXT_PARTS = ("file", "book_id")
ONE_VALUE_PARTS = ("book_id", "model", "precision", "cache", "strip_gutenberg")
"""The forms' fields that take one value (``file`` is a list on /v1/batches)."""


def _scalar(value: Any) -> bool:
    """A number or boolean: sent as its text in a multipart part (``bool`` is an ``int``)."""
    return isinstance(value, int | float)


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    if not (case.media_type or "").startswith("multipart/form-data") or not isinstance(case.body, dict):
        return True
    for name in TEXT_PARTS:
        value = case.body.get(name)
        values = value if isinstance(value, list) else [value]
        if any(_scalar(item) for item in values):
            return False
    return not any(isinstance(case.body.get(name), list) and len(case.body[name]) <= 1 for name in ONE_VALUE_PARTS)
