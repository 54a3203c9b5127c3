"""Prompt templates from ``prompts/``, rendered strictly (an undefined variable is an error).

A request is two messages: a static system message (instructions + taxonomy, identical across
requests so providers' prompt caches hit) and a user message holding the item(s). The prompt
version is a content hash of every template file a :class:`PromptSet` uses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from annotator.config import resource_path
from annotator.errors import TemplateError
from annotator.records import Item
from annotator.taxonomy import Taxonomy

Detail = Literal["full", "short"]


def _environment(loader: jinja2.BaseLoader | None = None, *, as_written: bool = False) -> SandboxedEnvironment:
    """Strict sandboxed Jinja; our prompt files trim block lines, user templates render as written."""
    return SandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        trim_blocks=not as_written,
        lstrip_blocks=not as_written,
        keep_trailing_newline=False,
        autoescape=False,
    )


def compile_template(source: str, name: str = "<template>") -> jinja2.Template:
    """Compile a user template string strictly, to render exactly as written.

    No whitespace control beyond Jinja's own ``{%-`` / ``-%}``: the newline after
    ``{% for c in choices %}`` stays, so lettered options come out one per line.

    Raises:
        TemplateError: on a syntax error, naming the template.
    """
    try:
        return _environment(as_written=True).from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{name}: line {exc.lineno}: {exc.message}") from exc


def render(template: jinja2.Template, name: str, **variables: Any) -> str:
    """Render a compiled template; undefined variables raise :class:`TemplateError`."""
    try:
        return template.render(**variables)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{name}: {exc.message}") from exc


def clip(text: str, max_chars: int) -> str:
    """Keep the head and tail of an over-long text, with a marker saying what was cut."""
    if len(text) <= max_chars:
        return text
    keep = max_chars // 2
    cut = len(text) - 2 * keep
    return f"{text[:keep]}\n[... {cut} characters omitted ...]\n{text[-keep:]}"


def fence(text: str, name: str = "SAMPLE") -> str:
    """A boundary line the text cannot contain: ``==== SAMPLE <content hash> ====``.

    The item goes between two identical fence lines, so nothing inside it (a fake closing tag,
    "ignore previous instructions", a fake JSON answer) can end the data block. The hash is of the
    text itself, so the request, and its cache key, stay deterministic.
    """
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    for size in (12, 24, 64):
        line = f"==== {name} {digest[:size]} ===="
        if line not in text:
            return line
    return f"==== {name} {digest} {len(text)} ===="  # pragma: no cover - a text quoting its own hash


@dataclass(frozen=True)
class Example:
    """A labeled example shown in the system prompt (few-shot)."""

    text: str
    labels: str


@dataclass
class PromptSet:
    """The templates for one kind, bound to a taxonomy.

    Attributes:
        taxonomy: the taxonomy whose labels are listed.
        kind: ``eval`` or ``corpus``; picks ``<kind>-system.j2`` and ``<kind>-item.j2``.
        detail: ``full`` lists examples and confusions per label, ``short`` descriptions only.
        with_confidence: ask for per-dimension confidences.
        max_chars: item texts longer than this are clipped (head and tail kept).
        examples: fixed few-shot examples rendered into the system message.
        pool_version: content hash of the retrieval pool for per-item examples (if any).
        directory: the template directory (``prompts/`` by default).
    """

    taxonomy: Taxonomy
    kind: str
    detail: Detail = "full"
    with_confidence: bool = True
    max_chars: int = 12000
    examples: tuple[Example, ...] = ()
    pool_version: str = ""
    directory: Path = field(default_factory=lambda: resource_path("prompts"))

    @cached_property
    def _env(self) -> SandboxedEnvironment:
        return _environment(jinja2.FileSystemLoader(str(self.directory)))

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self._env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"{self.directory / name}: prompt template not found") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{self.directory / name}: line {exc.lineno}: {exc.message}") from exc

    @property
    def _names(self) -> tuple[str, str, str]:
        return f"{self.kind}-system.j2", f"{self.kind}-item.j2", "batch.j2"

    @cached_property
    def version(self) -> str:
        """sha256 (12 hex) over the template files and the rendering options."""
        digest = hashlib.sha256()
        for name in self._names:
            path = self.directory / name
            if not path.is_file():
                raise TemplateError(f"{path}: prompt template not found")
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        digest.update(f"{self.detail}|{self.with_confidence}|{self.max_chars}|{self.pool_version}".encode())
        for ex in self.examples:
            digest.update(f"{ex.text}\0{ex.labels}\0".encode())
        return digest.hexdigest()[:12]

    @cached_property
    def system(self) -> str:
        """The static system message."""
        name = self._names[0]
        return render(
            self._template(name),
            name,
            taxonomy_name=self.taxonomy.name,
            dimensions=[d.model_dump() for d in self.taxonomy.dimensions(self.kind)],
            detail=self.detail,
            with_confidence=self.with_confidence,
            examples=[{"text": clip(e.text, 600), "labels": e.labels} for e in self.examples],
        )

    def item_message(self, item: Item, examples: tuple[Example, ...] = (), evidence: tuple[str, ...] = ()) -> str:
        """The user message for one item, after its retrieved examples (if any), with its evidence lines."""
        name = self._names[1]
        shown = [{"text": e.text, "labels": e.labels, "fence": fence(e.text, "EXAMPLE")} for e in examples]
        text = clip(item.text, self.max_chars)
        return render(self._template(name), name, text=text, fence=fence(text), id=item.id, examples=shown,
                      evidence=list(evidence))

    def batch_message(self, items: list[Item], evidence: list[tuple[str, ...]] | None = None) -> str:
        """The user message for several items labeled in one request (with each item's evidence lines)."""
        name = self._names[2]
        per_item = max(500, self.max_chars // max(1, len(items)))
        said = evidence or [()] * len(items)
        entries = [{"id": it.id, "text": text, "fence": fence(text), "evidence": list(lines)}
                   for it, lines in zip(items, said, strict=True) for text in [clip(it.text, per_item)]]
        unit = self.taxonomy.kinds[self.kind].unit
        return render(self._template(name), name, items=entries, unit=unit)

    def messages(self, items: list[Item], system: str | None = None) -> list[dict[str, str]]:
        """Chat messages for one item (or a batch when ``len(items) > 1``)."""
        user = self.item_message(items[0]) if len(items) == 1 else self.batch_message(items)
        return [
            {"role": "system", "content": self.system if system is None else system},
            {"role": "user", "content": user},
        ]
