"""Writes the JSON schemas of the Prometheus operator kinds used by the monitoring component.

The schemas are derived from the operator's CRDs through the typed models of
``cloudcoil-models-prometheus-operator`` (generated from the CRD OpenAPI schemas of the same
operator release). Regenerate in a scratch environment:

    python -m venv /tmp/crd
    /tmp/crd/bin/pip install cloudcoil-models-prometheus-operator==0.80.1.0
    /tmp/crd/bin/python deploy/k8s/schemas/generate.py

Strict like ``kubectl apply --validate=strict``: unknown fields are errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GROUP = "monitoring.coreos.com"
VERSION = "v1"
KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
DROPPED_KEYS = ("title", "default", "description")


def _simplify(node: Any) -> Any:
    """Drops pydantic's optional-as-null unions and cosmetic keys; closes objects."""
    if isinstance(node, list):
        return [_simplify(item) for item in node]
    if not isinstance(node, dict):
        return node
    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        options = [option for option in any_of if option != {"type": "null"}]
        if len(options) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return _simplify({**rest, **options[0]})
    out = {k: _simplify(v) for k, v in node.items() if k not in DROPPED_KEYS}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def schema_for(kind: str) -> dict[str, Any]:
    from cloudcoil.models.prometheus_operator import v1

    model = getattr(v1, kind)
    schema = _simplify(model.model_json_schema(by_alias=True, mode="validation"))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
    return schema


def main() -> None:
    out_dir = HERE / GROUP
    out_dir.mkdir(exist_ok=True)
    for kind in KINDS:
        path = out_dir / f"{kind.lower()}_{VERSION}.json"
        path.write_text(json.dumps(schema_for(kind), indent=1, sort_keys=True) + "\n")
        print(f"wrote {path.relative_to(HERE.parents[2])}")


if __name__ == "__main__":
    main()
