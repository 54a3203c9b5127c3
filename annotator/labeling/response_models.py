"""Response models built from the taxonomy (``pydantic.create_model`` with ``Literal`` label sets).

Field order is the decoding order. The JSON schema of each generated class is computed once and
reused (instructor and the cache key ask for it on every request).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator

from annotator.taxonomy import Taxonomy


class CachedSchemaModel(BaseModel):
    """Base for generated response models: the JSON schema is computed once per class."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:  # noqa: D102
        if args or kwargs:
            return super().model_json_schema(*args, **kwargs)
        cached = cls.__dict__.get("_schema_cache")
        if cached is None:
            cached = super().model_json_schema()
            type.__setattr__(cls, "_schema_cache", cached)
        return cached


def build_response_model(
    taxonomy: Taxonomy,
    kind: str,
    *,
    rationale: bool = True,
    confidence: bool = True,
    with_id: bool = False,
    restrict: dict[str, list[str]] | None = None,
) -> type[BaseModel]:
    """Build the pydantic model one answer must satisfy.

    Field order is the decoding order: (the item id in batches,) a short rationale, then per
    dimension its label(s) and optionally a 0..1 confidence. Label sets are ``Literal`` types
    taken from the taxonomy; a label repeated in a list dimension is kept once (``[a, b, a]`` says
    ``[a, b]``: nothing is lost, and a grammar-constrained small model repeats it on every re-ask,
    which failed the item).

    Args:
        taxonomy: the loaded taxonomy.
        kind: ``eval`` or ``corpus`` (or any kind the taxonomy declares).
        rationale: include the rationale field.
        confidence: include ``<dimension>_confidence`` fields.
        with_id: start with an ``id`` field (entries of a batched answer).
        restrict: dimension id -> the only labels allowed (in that order), e.g. the labels of an
            item's nearest labeled neighbours; other dimensions keep their full label set.
    """
    fields: dict[str, Any] = {}
    if with_id:
        fields["id"] = (str, Field(description="the id of the item these labels are for"))
    if rationale:
        fields["rationale"] = (
            str,
            Field(description="one or two sentences on what the item needs", max_length=600),
        )
    dims = taxonomy.dimensions(kind)
    for dim in dims:
        allowed = [lab for lab in (restrict or {}).get(dim.id, []) if lab in dim.label_ids] or dim.label_ids
        lit = Literal[tuple(allowed)]  # type: ignore[valid-type]
        if dim.multi:
            lo = dim.min if dim.min is not None else 1
            spec = Field(min_length=min(lo, len(allowed)), max_length=min(dim.max or len(allowed), len(allowed)),
                         description=dim.question)
            fields[dim.id] = (list[lit], spec)
        else:
            fields[dim.id] = (lit, Field(description=dim.question))
        if confidence:
            # the schema asks for 0..1; an answer outside it is clipped and flagged by the tagger,
            # not failed (small models answer 2.5 or 100)
            fields[f"{dim.id}_confidence"] = (float, Field(json_schema_extra={"minimum": 0.0, "maximum": 1.0}))
    validators = {}
    multi = [d.id for d in dims if d.multi]
    if multi:
        validators["unique_labels"] = field_validator(*multi, mode="before")(_once)
    name = f"{kind.capitalize()}Labels" + ("Entry" if with_id else "")
    return create_model(  # type: ignore[call-overload]
        name, __base__=CachedSchemaModel, __validators__=validators, **fields
    )


def _once(cls: type, value: Any) -> Any:
    """Each label of a list once, in the order first said (anything else is left to the type check)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(dict.fromkeys(value))
    return value


def build_batch_model(entry_model: type[BaseModel]) -> type[BaseModel]:
    """Answer model for several items per request: ``{"items": [entry, ...]}``.

    Args:
        entry_model: a model from :func:`build_response_model` with ``with_id=True``.
    """
    return create_model(  # type: ignore[call-overload]
        "BatchLabels", __base__=CachedSchemaModel, items=(list[entry_model], Field(min_length=1))
    )
