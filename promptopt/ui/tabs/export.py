"""Export tab: choose a format, download the file, see what is in it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import gradio as gr

from promptopt.ui.context import AppContext, Unavailable, user_message
from promptopt.ui.formatting import preview_text
from promptopt.ui.state import SessionState, bind_user

# Used only while promptopt.export is missing from a build: the current prompt as text or JSON.
FALLBACK_FORMATS = {"text": ("Plain text", ".txt"), "json": ("JSON", ".json")}


def formats() -> dict[str, tuple[str, str]]:
    try:
        from promptopt.export import FORMATS
    except ImportError:
        return FALLBACK_FORMATS
    return dict(FORMATS)


def _fallback(ctx: AppContext, project_id: int, fmt: str) -> tuple[str, str]:
    project = ctx.store.projects.get(project_id)
    prompt = (
        ctx.store.prompts.get(project.prompt_id).text
        if project.prompt_id is not None
        else project.template
    )
    stem = f"project-{project.id}"
    if fmt == "text":
        return f"{stem}.txt", prompt + "\n"
    body = {"name": project.name, "task": project.task, "prompt": prompt}
    return f"{stem}.json", json.dumps(body, ensure_ascii=False, indent=2) + "\n"


def build(ctx: AppContext, state: gr.State) -> dict[str, Any]:
    choices = [(label, key) for key, (label, _ext) in formats().items()]
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
            project = ctx.project(st.project_id)
            annotator = st.annotator if mine else None
            if key in FALLBACK_FORMATS and key not in formats():
                name, content = _fallback(ctx, project.id, key)
            else:
                from promptopt.export import export_project

                try:
                    compare = ctx.compare
                except Unavailable:
                    compare = None
                name, content = export_project(
                    ctx.store, project.id, key, annotator, compare=compare
                )
        except Exception as exc:
            return {status: user_message(exc)}
        # One folder per export, so two users exporting the same project never collide.
        folder = ctx.export_dir / uuid.uuid4().hex
        folder.mkdir(parents=True)
        path = folder / name
        path.write_text(content, encoding="utf-8")
        return {
            status: f"Exported `{name}` ({len(content):,} characters).",
            download: str(path),
            preview: preview_text(content),
        }

    export_btn.click(
        on_export, [state, fmt, mine_only], [status, download, preview], api_name="export"
    )
    return {}
