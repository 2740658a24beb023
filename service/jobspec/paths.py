"""Dotted spec paths (`optimizer.lr`): the one home for reading, setting, flattening and diffing them.

Sweeps (their space), clones (overrides), comparisons, the dashboard and the `--set` option all use these.
"""

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from service.jobspec.spec import JobRequest


class PathError(ValueError):
    """A dotted path that names no field of the spec (or a group where a field is needed)."""


def flatten(spec: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested spec as dotted path -> value."""
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_path(spec: Mapping[str, Any], path: str) -> Any:
    """The value at dotted `path` (None where any part is absent)."""
    value: Any = spec
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set dotted `path` in the nested `spec` in place, making groups as needed; PathError if a part is no group."""
    *groups, leaf = path.split(".")
    target = spec
    for group in groups:
        target = target.setdefault(group, {})
        if not isinstance(target, dict):
            raise PathError(f"{group} is not a group of fields")
    target[leaf] = value


def with_values(spec: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `spec` with each dotted path in `values` set to its value."""
    out = copy.deepcopy(dict(spec))
    for path, value in values.items():
        set_path(out, path, value)
    return out


def diff(specs: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The dotted paths whose values are not the same in every spec, sorted, with each spec's value (None: absent)."""
    flats = [flatten(spec) for spec in specs]
    paths = sorted(set().union(*flats))
    return {p: [f.get(p) for f in flats] for p in paths if len({repr(f.get(p)) for f in flats}) > 1}


def field_annotation(path: str) -> Any:
    """The annotation of the spec field at dotted `path`; PathError naming the path if there is none."""
    model: type[BaseModel] = JobRequest
    parts = path.split(".")
    annotation: Any = None
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            known = ", ".join(sorted(model.model_fields))
            raise PathError(f"{'.'.join(parts[: depth + 1])!r} is not a job spec field ({known})")
        annotation = field.annotation
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if depth < len(parts) - 1 and not nested:
            raise PathError(f"{'.'.join(parts[: depth + 1])!r} has no fields inside")
        if depth == len(parts) - 1 and nested:
            example = f"{path}.{next(iter(annotation.model_fields))}"
            raise PathError(f"name one field of the group (such as {example})")
        if nested:
            model = annotation
    return annotation
