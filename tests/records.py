"""Hand-built rows in the shape the engines write them, for tests that need stored history
without running an engine. ``test_records_match_the_engines`` holds each helper to the engine's own
rows, so a change in what an engine writes fails there, not silently in every other test."""

from __future__ import annotations

from typing import Any

from promptopt.storage import Store
from promptopt.storage.models import Comparison, Edit


def add_edit(
    store: Store,
    *,
    project_id: int,
    annotator: str,
    input_id: int,
    prompt_id: int,
    output: str,
    edited: str,
    status: str = "done",
    **fields: Any,
) -> tuple[Edit, Comparison | None]:
    """An edit as ``EditService.submit`` stores it: a changed output also becomes the comparison
    "the edit (b) beats the model's output (a)", linked both ways; an unchanged one has none."""
    with store.transaction():
        edit = store.edits.add(
            project_id=project_id,
            annotator=annotator,
            input_id=input_id,
            prompt_id=prompt_id,
            output=output,
            edited=edited,
            status=status if output.split() != edited.split() else "accepted",
            **fields,
        )
        if output.split() == edited.split():
            return edit, None
        comparison = store.comparisons.add(
            project_id=project_id,
            verdict="b",
            annotator=annotator,
            input_id=input_id,
            prompt_a_id=prompt_id,
            prompt_b_id=prompt_id,
            output_a=output,
            output_b=edited,
            source="edit",
            meta={"edit_id": edit.id},
        )
        edit = store.edits.update(edit.id, comparison_id=comparison.id)
    return edit, comparison
