"""Profile tab: the current annotator's learned preferences; edit, pin, delete and restore."""

from __future__ import annotations

from typing import Any

import gradio as gr

from promptopt.ui.context import AppContext, user_message
from promptopt.ui.formatting import PROFILE_HEADERS, parse_id, profile_rows
from promptopt.ui.state import SessionState, bind_user

INTRO = (
    "What the app has learned about how **you** want outputs written: *observed* ones are "
    "measured in your edits (with their evidence), *inferred* ones are the model's reading. "
    "A preference is applied once *verified* (replayed on your earlier inputs, it brought "
    "outputs closer to your edits); pin one to apply it anyway. An *exact fix* (off by "
    "default) corrects outputs directly, e.g. cuts to a word limit at a sentence end."
)


def id_box() -> gr.Textbox:
    """Empty until a row is clicked (a number box would show a misleading 0)."""
    return gr.Textbox(
        label="Preference id", placeholder="click a row above", scale=1, elem_id="profile-id"
    )


def build(ctx: AppContext, state: gr.State) -> dict[str, Any]:
    ws = ctx.workspace
    gr.Markdown(INTRO)
    with gr.Row():
        show_deleted = gr.Checkbox(label="Show deleted", value=False)
        refresh_btn = gr.Button("Refresh", size="sm", elem_id="profile-refresh")
    table = gr.Dataframe(
        headers=PROFILE_HEADERS,
        value=[],
        interactive=False,
        wrap=True,
        elem_id="profile-table",
        label="Learned preferences",
    )
    with gr.Row(equal_height=True):
        pref_id = id_box()
        text = gr.Textbox(label="Preference text", scale=5, elem_id="profile-text")
    with gr.Row():
        save_btn = gr.Button("Save text", variant="primary")
        pin_btn = gr.Button("Pin")
        unpin_btn = gr.Button("Unpin")
        delete_btn = gr.Button("Delete", variant="stop")
        restore_btn = gr.Button("Restore")
        fix_on_btn = gr.Button("Exact fix on", elem_id="profile-fix-on")
        fix_off_btn = gr.Button("Exact fix off")
    with gr.Row(equal_height=True):
        new_text = gr.Textbox(
            label="Add a preference of your own (pinned: applied to every output)",
            scale=5,
            elem_id="profile-new",
        )
        add_btn = gr.Button("Add", scale=1, elem_id="profile-add")
    status = gr.Markdown("", elem_id="profile-status")

    def rows(st: SessionState, deleted: bool) -> list[list[Any]]:
        return profile_rows(ws.profile(ws.project(st.project_id).id, st.annotator, deleted))

    def refresh(
        st: SessionState, deleted: bool = False, request: gr.Request | None = None
    ) -> dict[Any, Any]:
        bind_user(st, request)
        try:
            values = rows(st, deleted)
        except Exception as exc:
            return {table: [], status: user_message(exc)}
        message = "" if values else "No preferences yet: make a few edits in the Edit tab."
        return {table: values, status: message}

    refresh_btn.click(refresh, [state, show_deleted], [table, status], api_name="profile")
    show_deleted.change(refresh, [state, show_deleted], [table, status])

    def on_select(evt: gr.SelectData) -> dict[Any, Any]:
        row = evt.row_value or []
        if len(row) < 2:
            return {}
        return {pref_id: int(row[0]), text: str(row[1])}

    table.select(on_select, None, [pref_id, text])

    def change(**fields: Any) -> Any:
        def handler(
            st: SessionState,
            pid: str | float | None,
            body: str,
            deleted: bool,
            request: gr.Request | None = None,
        ) -> dict:
            bind_user(st, request)
            try:
                values = dict(fields)
                if "text" in values:
                    values["text"] = body or ""
                # The workspace refuses another annotator's (or project's) preference.
                ws.update_preference(
                    ws.project(st.project_id).id,
                    st.annotator,
                    parse_id(pid),
                    **values,
                )
            except Exception as exc:
                return {status: user_message(exc)}
            result = refresh(st, deleted)
            result[status] = "Saved."
            return result

        return handler

    inputs = [state, pref_id, text, show_deleted]
    outputs = [table, status]
    save_btn.click(change(text=True), inputs, outputs, api_name="profile_save")
    pin_btn.click(change(pinned=True), inputs, outputs, api_name="profile_pin")
    unpin_btn.click(change(pinned=False), inputs, outputs, api_name="profile_unpin")
    delete_btn.click(change(deleted=True), inputs, outputs, api_name="profile_delete")
    restore_btn.click(change(deleted=False), inputs, outputs, api_name="profile_restore")
    fix_on_btn.click(change(fix=True), inputs, outputs, api_name="profile_fix_on")
    fix_off_btn.click(change(fix=False), inputs, outputs, api_name="profile_fix_off")

    def on_add(
        st: SessionState, body: str, deleted: bool, request: gr.Request | None = None
    ) -> dict[Any, Any]:
        bind_user(st, request)
        try:
            pref = ws.add_preference(ws.project(st.project_id).id, st.annotator, body)
        except Exception as exc:  # the text stays in the box
            return {status: user_message(exc)}
        result = refresh(st, deleted)
        result.update({status: f"Added preference #{pref.id} (pinned).", new_text: ""})
        return result

    add_btn.click(
        on_add, [state, new_text, show_deleted], [table, status, new_text], api_name="profile_add"
    )

    return {
        "refresh": lambda st, request=None: refresh(st, False, request),
        "refresh_outputs": [table, status],
        "show_deleted": show_deleted,
    }
