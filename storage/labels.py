"""Datasette metadata for the promptopt database: which column names a row when another table
links to it (``label_column``), and one line about each table.

Datasette guesses a label only for tables with a ``name`` or ``title`` column, so without this
only ``project`` reads well; with it, an input, a prompt or a preference shows its text wherever
a foreign key points at it. ``promptopt db metadata --out metadata.json`` writes the file; then
``datasette $(promptopt db path) -m metadata.json`` (Datasette 0.x) or ``-c metadata.json`` (1.x).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LABEL_COLUMNS = {
    "project": "name",
    "input": "text",
    "prompt": "text",
    "llm_call": "purpose",
    "comparison": "verdict",
    "edit": "edited",
    "preference": "text",
    "embedding": "model",
    "memory": "annotator",
    "engine_state": "engine",
}

DESCRIPTIONS = {
    "project": "A task: its base prompt with {input}, models and settings.",
    "input": "The inputs a project's prompts are run on.",
    "prompt": "Every candidate prompt, with its parent and origin.",
    "llm_call": "Every call to a model: messages, parameters, output, tokens, cost, latency.",
    "comparison": "Pairwise votes (source 'vote'), and 'edited beats original' from edits.",
    "edit": "Outputs edited (or accepted) by hand, with the inferred preference.",
    "preference": "Learned and user-written preferences, per annotator.",
    "embedding": "Vectors (float32 blobs) of inputs and prompts, with their model.",
    "memory": "One row per Edit round: the context seen and the preference stored for it.",
    "engine_state": "Saved engine state, so that a restart resumes.",
}


def datasette_metadata(db_path: Path | str) -> dict[str, Any]:
    """Metadata for ``datasette DB_PATH``; Datasette names a database after its file stem."""
    name = Path(db_path).stem
    tables = {
        table: {"label_column": column, "description": DESCRIPTIONS[table]}
        for table, column in LABEL_COLUMNS.items()
    }
    return {
        "title": "promptopt",
        "description": "Votes, edits, prompts and model calls recorded by promptopt.",
        "databases": {name: {"tables": tables}},
    }
