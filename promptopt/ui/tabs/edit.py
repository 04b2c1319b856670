"""Edit tab: the output for an input in an editable box, the preferences applied to it above;
submit the edit or accept as is; then the diff, the edit distance and the inferred preference."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from promptopt.ui.context import AppContext, user_message
from promptopt.ui.formatting import escape_md, shorten, word_diff
from promptopt.ui.state import SessionState, bind_user


def input_choices(ctx: AppContext, project_id: int | None) -> list[tuple[str, int]]:
    if project_id is None:
        return []
    return [(f"#{i.id}: {shorten(i.text, 70)}", i.id) for i in ctx.store.inputs.list(project_id)]


def next_input_id(ctx: AppContext, st: SessionState) -> int | None:
    """The first input this annotator has not edited yet; after all of them, start again."""
    assert st.project_id is not None
    inputs = ctx.store.inputs.list(st.project_id)
    if not inputs:
        return None
    done = {e.input_id for e in ctx.store.edits.list(st.project_id, st.annotator)}
    for item in inputs:
        if item.id not in done:
            return item.id
    return inputs[st.edit_rounds % len(inputs)].id


def applied_text(draft: Any) -> str:
    if not draft.applied:
        return "**Preferences applied:** none yet. Your edits teach them."
    lines = ["**Preferences applied to this output:**"]
    for pref in draft.applied:
        pin = " 📌" if getattr(pref, "pinned", 0) else ""
        lines.append(f"- {escape_md(pref.text)}{pin}")
    if draft.preference and len(draft.applied) > 1:
        lines.append(f"\nCondensed into: *{escape_md(draft.preference)}*")
    return "\n".join(lines)


def build(ctx: AppContext, state: gr.State) -> dict[str, Any]:
    with gr.Row(equal_height=True):
        pick = gr.Dropdown(label="Input", choices=[], value=None, scale=4, elem_id="edit-pick")
        next_btn = gr.Button("Next input  [n]", scale=1, elem_id="edit-next")
        gen_btn = gr.Button("Generate for this input", scale=1, elem_id="edit-generate")
    applied = gr.Markdown("", elem_id="edit-applied")
    input_box = gr.Textbox(label="Input", lines=4, max_lines=12, interactive=False)
    output_box = gr.Textbox(
        label="Output: edit it into what you wanted",
        lines=10,
        max_lines=40,
        interactive=True,
        elem_id="edit-output",
    )
    with gr.Row():
        submit_btn = gr.Button(
            "Submit edit  [Ctrl+Enter]", variant="primary", elem_id="edit-submit"
        )
        accept_btn = gr.Button("Accept as is", elem_id="edit-accept")
        retry_btn = gr.Button("Retry", visible=False, elem_id="edit-retry")
    status = gr.Markdown("", elem_id="edit-status")
    diff = gr.HighlightedText(
        label="Your change",
        color_map={"+": "green", "-": "red"},
        combine_adjacent=True,
        show_legend=True,
        elem_id="edit-diff",
    )
    with gr.Row():
        distance = gr.Markdown("", elem_id="edit-distance")
        inferred = gr.Markdown("", elem_id="edit-inferred")
    with gr.Row():
        pending_btn = gr.Button("Infer pending preferences again", size="sm")

    draft_outputs = [state, pick, applied, input_box, output_box, status, retry_btn]

    def draft_for(st: SessionState, input_id: int | None) -> Iterator[dict]:
        try:
            project = ctx.project(st.project_id)
            if input_id is None:
                input_id = next_input_id(ctx, st)
            if input_id is None:
                yield {status: "This project has no inputs yet; add some in the Project tab."}
                return
            yield {
                pick: gr.update(choices=input_choices(ctx, project.id), value=input_id),
                status: "Retrieving your preferences…",
                retry_btn: gr.update(visible=False),
            }
            draft = ctx.edit.prepare(project.id, st.annotator, int(input_id))
        except Exception as exc:
            yield {status: f"⚠ {user_message(exc)}", retry_btn: gr.update(visible=True)}
            return
        st.draft, st.draft_output = draft, None
        yield {
            state: st,
            applied: applied_text(draft),
            input_box: draft.input.text,
            output_box: "",
            status: "Generating…",
        }
        parts: list[str] = []
        try:
            response = ctx.edit.generate(draft)
            for delta in response:
                parts.append(delta)
                yield {output_box: "".join(parts)}
            response.completion()
        except Exception as exc:
            yield {status: f"⚠ {user_message(exc)}", retry_btn: gr.update(visible=True)}
            return
        st.draft_output = "".join(parts)
        yield {
            state: st,
            applied: applied_text(draft),
            input_box: draft.input.text,
            output_box: st.draft_output,
            status: "Edit the output, then submit (or accept it as is).",
        }

    def on_next(st: SessionState, request: gr.Request | None = None) -> Iterator[dict]:
        bind_user(st, request)
        yield from draft_for(st, None)

    def on_generate(
        st: SessionState, input_id: int | None, request: gr.Request | None = None
    ) -> Iterator[dict]:
        bind_user(st, request)
        yield from draft_for(st, input_id)

    next_btn.click(on_next, [state], draft_outputs, api_name="edit_next")
    gen_btn.click(on_generate, [state, pick], draft_outputs, api_name="edit_generate")
    retry_btn.click(on_generate, [state, pick], draft_outputs, api_name="edit_retry")

    result_outputs = [state, status, diff, distance, inferred, output_box]

    def finish(st: SessionState, edited: str | None) -> Iterator[dict]:
        draft, original = st.draft, st.draft_output
        if draft is None or original is None:
            yield {status: "Generate an output first (Next input)."}
            return
        changed = edited is not None and edited != original
        if changed:
            yield {
                diff: word_diff(original, edited or ""),
                distance: "",
                inferred: "**Inferred preference:** pending (inferring…)",
                status: "Saving your edit…",
            }
        try:
            if changed:
                result = ctx.edit.submit(draft, original, edited, st.annotator)
            else:
                result = ctx.edit.accept(draft, original, st.annotator)
        except Exception as exc:  # the edited text stays in the box
            yield {status: f"⚠ The edit was not saved: {user_message(exc)} Submit again."}
            return
        st.draft, st.draft_output = None, None
        st.edit_rounds += 1
        saved = {
            state: st,
            status: "Saved. Press Next input for another round.",
            diff: word_diff(original, edited if changed and edited is not None else original),
            distance: f"**Edit distance:** {result.word_distance} words · "
            f"{result.char_distance} characters",
        }
        if result.status == "pending":
            # Stored: the page says so now; the preference is inferred after.
            yield {**saved, inferred: "**Inferred preference:** pending (inferring…)"}
            try:
                result = ctx.edit.learn(result.edit.id)
            except Exception as exc:
                result.error = user_message(exc)
        if result.status == "pending":
            pref = "**Inferred preference:** pending (the model call failed; retry below)"
        elif result.inferred:
            pref = f"**Inferred preference:** {escape_md(result.inferred)}"
        else:
            pref = "**Accepted as is:** the applied preference was confirmed."
        yield {**saved, inferred: pref}

    def on_submit(
        st: SessionState, edited: str, request: gr.Request | None = None
    ) -> Iterator[dict]:
        bind_user(st, request)
        yield from finish(st, edited)

    def on_accept(st: SessionState, request: gr.Request | None = None) -> Iterator[dict]:
        bind_user(st, request)
        yield from finish(st, None)

    submit_btn.click(on_submit, [state, output_box], result_outputs, api_name="edit_submit")
    accept_btn.click(on_accept, [state], result_outputs, api_name="edit_accept")

    def on_pending(st: SessionState, request: gr.Request | None = None) -> dict[Any, Any]:
        bind_user(st, request)
        try:
            project = ctx.project(st.project_id)
            done = ctx.edit.retry_pending(project.id, st.annotator)
        except Exception as exc:
            return {status: f"⚠ {user_message(exc)}"}
        return {status: f"Inferred {done} pending preference(s)."}

    pending_btn.click(on_pending, [state], [status], api_name="edit_retry_pending")

    def refresh(st: SessionState) -> dict[Any, Any]:
        choices = input_choices(ctx, st.project_id)
        current = st.draft.input.id if st.draft is not None else None
        return {pick: gr.update(choices=choices, value=current)}

    return {"refresh": refresh, "refresh_outputs": [pick]}
