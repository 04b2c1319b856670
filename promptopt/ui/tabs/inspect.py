"""Inspect tab: every LLM call of the project with its full messages, model, tokens, cost and
latency. Nothing the system sends to a model is hidden."""

from __future__ import annotations

from typing import Any

import gradio as gr

from promptopt.ui.context import AppContext, user_message
from promptopt.ui.formatting import (
    CALL_HEADERS,
    REJECTION_HEADERS,
    call_detail,
    call_rows,
    rejection_rows,
)
from promptopt.ui.state import SessionState

LIMIT = 500


def build(ctx: AppContext, state: gr.State) -> dict[str, Any]:
    with gr.Row():
        summary = gr.Markdown("", elem_id="inspect-summary")
        refresh_btn = gr.Button("Refresh", size="sm", elem_id="inspect-refresh", scale=0)
    table = gr.Dataframe(
        headers=CALL_HEADERS,
        value=[],
        interactive=False,
        wrap=True,  # an error is read in full, not clipped
        column_widths=["5%", "14%", "11%", "13%", "10%", "7%", "8%", "32%"],
        elem_id="inspect-table",
        label=f"LLM calls of this project, newest first (up to {LIMIT}); click one for details",
    )
    # Hidden until a call is picked: an empty JSON box reads as a broken "{..}".
    detail = gr.JSON(label="Call", elem_id="inspect-detail", visible=False)
    refused = gr.Dataframe(
        headers=REJECTION_HEADERS,
        value=[],
        interactive=False,
        wrap=True,
        elem_id="inspect-rejections",
        label="Candidate prompts the validator refused, newest first, with the reason",
    )

    ws = ctx.workspace

    def refresh(st: SessionState) -> dict[Any, Any]:
        try:
            calls = ws.calls(ws.project(st.project_id).id, limit=LIMIT)
            rejections = ws.rejections(ws.project(st.project_id).id)
        except Exception as exc:
            return {summary: user_message(exc), table: [], refused: []}
        tokens = sum((c.prompt_tokens or 0) + (c.completion_tokens or 0) for c in calls)
        cost = sum(c.cost or 0.0 for c in calls)
        errors = sum(1 for c in calls if c.error)
        return {
            summary: (
                f"**{len(calls)} calls** · {tokens:,} tokens · ${cost:.4f} · {errors} failed"
            ),
            table: call_rows(calls),
            refused: rejection_rows(rejections),
        }

    refresh_btn.click(refresh, [state], [summary, table, refused], api_name="calls")

    def on_select(st: SessionState, evt: gr.SelectData) -> Any:
        row = evt.row_value or []
        if not row or st.project_id is None:
            return gr.update(value=None, visible=False)
        try:
            return gr.update(value=call_detail(ws.call(st.project_id, int(row[0]))), visible=True)
        except Exception:  # a call of another project (or gone) is not shown
            return gr.update(value=None, visible=False)

    table.select(on_select, [state], detail)

    return {"refresh": refresh, "refresh_outputs": [summary, table, refused]}
