"""Typed rows returned by the repositories. Plain dataclasses: no behaviour, no database handle."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

JSON_FIELDS = {"settings", "meta", "messages", "params", "spec", "evidence"}


def from_row(cls: type[T], row: dict[str, Any]) -> T:
    """Build a dataclass from a row, decoding JSON columns and ignoring unknown columns."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in row.items():
        if key not in names:
            continue
        if key in JSON_FIELDS and isinstance(value, str):
            value = json.loads(value) if value else {}
        values[key] = value
    return cls(**values)


@dataclass
class Project:
    id: int
    name: str
    template: str
    task: str = ""
    generator_model: str | None = None
    optimizer_model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    prompt_id: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


@dataclass
class Input:
    id: int
    project_id: int
    text: str
    source: str | None = None
    position: int | None = None
    created_at: str | None = None


@dataclass
class Prompt:
    id: int
    project_id: int
    text: str
    origin: str
    parent_id: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    active: int = 1
    created_at: str | None = None


@dataclass
class LLMCall:
    id: int
    model: str
    messages: Any
    project_id: int | None = None
    purpose: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    output: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    latency_ms: float | None = None
    cache_key: str | None = None
    cached: int = 0
    error: str | None = None
    created_at: str | None = None


@dataclass
class Comparison:
    id: int
    project_id: int
    verdict: str
    annotator: str
    input_id: int | None = None
    prompt_a_id: int | None = None
    prompt_b_id: int | None = None
    output_a: str | None = None
    output_b: str | None = None
    left: str | None = None
    comment: str = ""
    source: str = "vote"
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None


@dataclass
class Edit:
    id: int
    project_id: int
    annotator: str
    output: str
    edited: str
    input_id: int | None = None
    prompt_id: int | None = None
    word_distance: int | None = None
    char_distance: int | None = None
    applied_preference: str | None = None
    inferred_preference: str | None = None
    status: str = "pending"
    error: str | None = None
    comparison_id: int | None = None
    created_at: str | None = None


@dataclass
class Preference:
    id: int
    project_id: int
    annotator: str
    text: str
    count: int = 1
    pinned: int = 0
    deleted: int = 0
    source: str = "edit"
    kind: str = "inferred"  # inferred | observable | user
    status: str = "pending"  # pending | verified | unverified (see promptopt.edit.verify)
    fix: int = 0  # an observable preference's exact output fix is switched on
    spec: dict[str, Any] = field(default_factory=dict)  # an observable preference's fact
    evidence: dict[str, Any] = field(default_factory=dict)  # support and the last verification
    created_at: str | None = None
    updated_at: str | None = None


@dataclass
class Rejection:
    """A candidate prompt the validator refused, and why."""

    id: int
    project_id: int
    text: str
    reason: str
    origin: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None


@dataclass
class MemoryItem:
    id: int
    project_id: int
    annotator: str
    embedding_id: int
    input_id: int | None = None
    preference_id: int | None = None
    edit_id: int | None = None
    comparison_id: int | None = None
    created_at: str | None = None
