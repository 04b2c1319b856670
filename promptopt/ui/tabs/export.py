"""Export tab: choose a format, download the file, see what is in it."""

from __future__ import annotations

from typing import Any

import gradio as gr

from promptopt.ui.context import AppContext, user_message
from promptopt.ui.formatting import preview_text
from promptopt.ui.state import SessionState, bind_user


def build(ctx: AppContext, state: gr.State) -> dict[str, Any]:
    ws = ctx.workspace
    choices = [(label, key) for key, (label, _ext) in ws.export_formats().items()]
    with gr.Row(equal_height=True):
        fmt = gr.Dropdown(
            label="Format", choices=choices, value=choices[0][1], scale=3, elem_id="export-format"
        )
        mine_only = gr.Checkbox(label="Only my feedback and profile", value=True, scale=1)
        export_btn = gr.Button("Export", variant="primary", scale=1, elem_id="export-go")
    status = gr.Markdown("", elem_id="export-status")
    download = gr.File(label="Download", interactive=False, elem_id="export-file")
    preview = gr.Code(label="Contents", language=None, interactive=False, elem_id="export-preview")

    def on_export(
        st: SessionState, key: str, mine: bool, request: gr.Request | None = None
    ) -> dict[Any, Any]:
        bind_user(st, request)
        try:
            project = ws.project(st.project_id)
            path, content = ws.export(project.id, key, st.annotator if mine else None)
        except Exception as exc:
            return {status: user_message(exc)}
        return {
            status: f"Exported `{path.name}` ({len(content):,} characters).",
            download: str(path),
            preview: preview_text(content),
        }

    export_btn.click(
        on_export, [state, fmt, mine_only], [status, download, preview], api_name="export"
    )
    return {}
