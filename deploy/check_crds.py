"""Custom resources the chart renders, validated against the CRD schemas vendored under deploy/schemas/.

kubernetes-validate knows only Kubernetes' own kinds (it warns and passes on a ScaledObject), so this
checks them the way the API server would with strict field validation: the CRD's ``openAPIV3Schema``
as JSON Schema, every object that lists its ``properties`` closed to unknown fields (unless it
preserves them), ``nullable`` and ``x-kubernetes-int-or-string`` honoured. Run by
scripts/static-checks.sh (needs PyYAML and jsonschema, both in .venv-checks):

    python deploy/check_crds.py RENDERED.yaml...

Exits 1 naming each invalid resource, and when a file holds no resource of a vendored kind.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"


def strict(schema: Any) -> Any:
    """An openAPIV3Schema turned into a JSON Schema that refuses unknown fields, as the API server does."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items() if not key.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def vendored() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON Schema, for every served version of every vendored CRD."""
    found = {}
    for path in sorted(SCHEMAS.rglob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                found[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    return found


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    schemas, failed = vendored(), 0
    for path in paths:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if d]
        checked = [d for d in docs if (d.get("apiVersion"), d.get("kind")) in schemas]
        if not checked:
            print(f"{path}: no resource of a vendored kind ({sorted(k for _, k in schemas)})", file=sys.stderr)
            failed += 1
        for doc in checked:
            validator = jsonschema.Draft7Validator(schemas[(doc["apiVersion"], doc["kind"])])
            for error in validator.iter_errors(doc):
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                print(f"{path}: {doc['kind']} {doc['metadata'].get('name')}: {where}: {error.message}",
                      file=sys.stderr)
                failed += 1
        print(f"{path}: {len(checked)} custom resource(s) checked")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
