"""Edit tab: the output for an input in an editable box, the preferences applied to it above;
submit the edit or accept as is; then the diff, the edit distance and the inferred preference.

Submitting stores the edit and returns at once with what the edit measurably changed across
your similar edits (observed, no LLM); the preference is inferred in the background and shows as
"pending" until it is known. "Your change" shows the word diff as you type."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from promptopt.ui.context import AppContext, user_message
from promptopt.ui.formatting import Rate, escape_md, shorten, word_diff
from promptopt.ui.state import SessionState, bind_user
from promptopt.workspace import POLL_S, Draft, EditResult, ProfileEntry

Updates = Iterator[dict[Any, Any]]
# How long the page watches a background inference before it leaves "pending" on screen.
LEARN_WATCH_S = 120.0
LEARN_POLL_S = 0.25
PENDING = "**Inferred preference:** pending (inferring in the background…)"
LAST_INPUT = "edit-last-input"  # SessionState.extra key: the input of the last saved edit
WATCH = "edit-learning"  # SessionState.extra key: (edit id, observed ids, round) being learned
# "Your change" before there is one: what the panel will show (plain text, no category).
DIFF_HINT: list[tuple[str, str | None]] = [
    ("Your change shows here word by word as you edit the output: removed words in red (-), "
     "added in green (+).", None)
]  # fmt: skip


def _writing(drafts: int) -> str:
    return "Writing the output…" if drafts < 2 else "Writing two drafts…"


def _drafts_text(draft: Draft) -> list[str]:
    """Which of two drafts is shown and why, or that a second one is being written."""
    if draft.choice is not None and draft.choice.note:
        return ["", escape_md(draft.choice.note)]
    if draft.choice is None and draft.trial_added:
        listed = ", ".join(f"'{escape_md(p)}'" for p in draft.trial_added)
        return [
            "",
            f"Also writing a second draft with {listed} added (not verified yet); the one that "
            "fits your past edits better is shown.",
        ]
    return []


def applied_text(draft: Draft) -> str:
    fixes = draft.selection.fixes if draft.selection is not None else []
    fixed = [f"- {escape_md(pref.text)} (exact fix on)" for pref, _ in fixes]
    if not draft.applied:
        if draft.note:  # the profile is not empty: say why none of it applies here
            head = f"**Preferences applied:** none. {escape_md(draft.note)}"
        else:
            head = "**Preferences applied:** none yet. Your edits teach them."
        fix_lines = ["**Output fixes:**", *fixed] if fixed else []
        return "\n".join([head, *fix_lines, *_drafts_text(draft)])
    lines = ["**Preferences applied to this output:**"]
    for pref in draft.applied:
        pin = " 📌" if pref.pinned else ""
        lines.append(f"- {escape_md(pref.text)}{pin}")
    if draft.preference and len(draft.applied) > 1 and draft.selection is None:
        lines.append(f"\nCondensed into: *{escape_md(draft.preference)}*")
    if fixed:
        lines += ["**Output fixes:**", *fixed]
    return "\n".join([*lines, *_drafts_text(draft)])


def observed_text(result: EditResult | None) -> str:
    """What this edit and your similar earlier ones measurably share (no LLM), with evidence."""
    observed = result.learned.observed if result is not None and result.learned else []
    if not observed:
        return ""
    listed = "; ".join(
        f"{escape_md(p.text)} ({escape_md(str(p.evidence.get('text') or ''))})" for p in observed
    )
    return f"**Observed in your edits:** {listed}"


def _verdict(entry: ProfileEntry) -> str:
    """Whether a phrase is applied to new outputs, and why not (the verification's reason)."""
    reason = (entry.preference.evidence.get("verification") or {}).get("reason") or ""
    if entry.status == "pending":
        return "not verified yet, so not applied"
    if entry.preference.pinned or not reason:
        return entry.status
    return f"{entry.status}: {reason}"


def learned_text(result: EditResult, observed_ids: list[int], profile: list[ProfileEntry]) -> str:
    """Once an edit is learned from: what it taught (observed with evidence, inferred), each
    with whether it is applied to new outputs and why not, read from the profile."""
    by_id = {e.preference.id: e for e in profile}
    observed = [by_id[i] for i in observed_ids if i in by_id]
    lines = []
    if observed:
        listed = "; ".join(
            f"{escape_md(e.preference.text)} "
            f"({escape_md(str(e.preference.evidence.get('text') or ''))}) "
            f"— {escape_md(_verdict(e))}"
            for e in observed
        )
        lines.append(f"**Observed in your edits:** {listed}")
    inferred = preference_text(result)
    key = " ".join((result.inferred or "").lower().split())
    match = [e for e in profile if " ".join(e.preference.text.lower().split()) == key]
    if result.status == "done" and key and match:
        inferred += f" — {escape_md(_verdict(match[0]))}"
    return "\n\n".join([*lines, inferred])


def live_diff(original: str | None, edited: str | None) -> list[tuple[str, str | None]]:
    """The word diff of the draft on screen against its output, or the hint when unchanged."""
    if not original or edited is None or edited.split() == original.split():
        return DIFF_HINT
    return word_diff(original, edited)


def preference_text(result: EditResult | None) -> str:
    if result is None or (result.status == "pending" and not result.error):
        return PENDING
    if result.status == "pending":
        return (
            "**Inferred preference:** pending (the model call failed: "
            f"{escape_md(result.error)}; retry below)"
        )
    if result.inferred:
        return f"**Inferred preference:** {escape_md(result.inferred)}"
    return "**Accepted as is:** the applied preference was confirmed."


@dataclass
class EditPage:
    pick: gr.Dropdown
    next_btn: gr.Button
    gen_btn: gr.Button
    applied: gr.Markdown
    input_box: gr.Textbox
    output_box: gr.Textbox
    submit_btn: gr.Button
    accept_btn: gr.Button
    retry_btn: gr.Button
    status: gr.Markdown
    diff: gr.HighlightedText
    distance: gr.Markdown
    inferred: gr.Markdown
    pending_btn: gr.Button


START_HINT = (
    "Press **n** (or **Next input**) for an output to edit, or pick an input and press "
    "**Generate for this input**."
)


def layout() -> EditPage:
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
        placeholder="Press n (or Next input) and an output to edit appears here.",
        elem_id="edit-output",
    )
    with gr.Row():
        submit_btn = gr.Button(
            "Submit edit  [Ctrl+Enter]", variant="primary", elem_id="edit-submit"
        )
        accept_btn = gr.Button("Accept as is", elem_id="edit-accept")
        retry_btn = gr.Button("Retry", visible=False, elem_id="edit-retry")
    status = gr.Markdown(START_HINT, elem_id="edit-status")
    diff = gr.HighlightedText(
        value=list[tuple[str, str | float | None]](DIFF_HINT),
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
    return EditPage(
        pick, next_btn, gen_btn, applied, input_box, output_box, submit_btn, accept_btn,
        retry_btn, status, diff, distance, inferred, pending_btn,
    )  # fmt: skip


class Handlers:
    def __init__(self, ctx: AppContext, state: gr.State, page: EditPage) -> None:
        self.ctx, self.state, self.page = ctx, state, page
        self.ws = ctx.workspace

    def choices(self, project_id: int | None) -> list[tuple[str, int]]:
        if project_id is None:
            return []
        return [(f"#{i.id}: {shorten(i.text, 70)}", i.id) for i in self.ws.inputs(project_id)]

    def draft_for(self, st: SessionState, input_id: int | None) -> Updates:
        p = self.page
        try:
            project = self.ws.project(st.project_id)
            if input_id is None:
                input_id = self.ws.next_input_id(project.id, st.annotator, st.edit_rounds)
            if input_id is None:
                yield {p.status: "This project has no inputs yet; add some in the Project tab."}
                return
            yield {
                p.pick: gr.update(choices=self.choices(project.id), value=input_id),
                p.status: "Retrieving your preferences…",
                p.retry_btn: gr.update(visible=False),
            }
            draft = self.ws.prepare(project.id, st.annotator, int(input_id))
        except Exception as exc:
            yield {p.status: f"⚠ {user_message(exc)}", p.retry_btn: gr.update(visible=True)}
            return
        st.draft, st.draft_output = draft, None
        yield {
            self.state: st,
            p.applied: applied_text(draft),
            p.input_box: draft.input.text,
            p.output_box: "",
            p.status: "Generating…",
            p.diff: DIFF_HINT,
        }
        parts: list[str] = []
        rate = Rate()
        try:
            # Two drafts (one batch) when observed preferences wait for verification: the first
            # streams, the better-fitting one is shown at the end.
            responses = self.ws.generate_drafts(draft)
            shown = 0.0
            for delta in responses[0]:
                parts.append(delta)
                # At most one update per POLL_S, as Compare: each costs CPU the model lacks.
                if time.monotonic() - shown >= POLL_S:
                    shown = time.monotonic()
                    yield {
                        p.output_box: "".join(parts),
                        p.status: rate.text(_writing(len(responses)), len(parts)),
                    }
            texts = ["".join(parts), *(r.text() for r in responses[1:])]
            for response in responses:
                response.completion()
        except Exception as exc:
            yield {p.status: f"⚠ {user_message(exc)}", p.retry_btn: gr.update(visible=True)}
            return
        # The exact fixes the user switched on in Profile (none by default) apply to the output.
        st.draft_output = self.ws.choose(draft, texts)
        yield {
            self.state: st,
            p.applied: applied_text(draft),
            p.input_box: draft.input.text,
            p.output_box: st.draft_output,
            p.status: "Edit the output, then submit (or accept it as is).",
        }

    def next(self, st: SessionState, request: gr.Request | None = None) -> Updates:
        bind_user(st, request)
        yield from self.draft_for(st, None)

    def generate(
        self, st: SessionState, input_id: int | None, request: gr.Request | None = None
    ) -> Updates:
        bind_user(st, request)
        yield from self.draft_for(st, input_id)

    def finish(self, st: SessionState, edited: str | None) -> dict[Any, Any]:
        """Store the edit (one quick call) and show it saved, with what was observed at once.
        Watching the background inference is a separate event (``learned``), so the next
        submit is never held behind the previous edit's learning."""
        p = self.page
        draft, original = st.draft, st.draft_output
        st.extra.pop(WATCH, None)
        if draft is None or original is None:
            return {p.status: "Nothing to submit yet: press Next input for an output to edit."}
        try:
            result = self.ws.submit_edit(draft, original, edited, st.annotator)
        except Exception as exc:  # the edited text stays in the box
            return {p.status: f"⚠ The edit was not saved: {user_message(exc)} Submit again."}
        st.draft, st.draft_output = None, None
        st.extra[LAST_INPUT] = draft.input.id
        st.edit_rounds += 1
        changed = edited is not None and edited != original
        observed = observed_text(result)
        if result.status == "pending":
            taught = [p.id for p in result.learned.observed] if result.learned else []
            st.extra[WATCH] = (result.edit.id, taught, st.edit_rounds)
        return {
            self.state: st,
            p.status: "Saved. Press Next input for another round.",
            p.diff: word_diff(original, edited if changed and edited is not None else original),
            p.distance: f"**Edit distance:** {result.word_distance} words · "
            f"{result.char_distance} characters",
            p.inferred: "\n\n".join(filter(None, [observed, preference_text(result)])),
        }

    def learned(self, st: SessionState, request: gr.Request | None = None) -> Updates:
        """Watch the last saved edit's background inference and show its phrase when known."""
        bind_user(st, request)
        watched = st.extra.get(WATCH)
        if watched is None:
            return
        edit_id, observed_ids, rounds = watched
        waited = 0.0
        while waited < LEARN_WATCH_S:
            result = self.ws.wait_learned(edit_id, st.annotator, LEARN_POLL_S)
            if result is not None:
                try:
                    profile = self.ws.profile(result.edit.project_id, st.annotator)
                except Exception:  # the phrase is still worth showing without its verdict
                    profile = []
                text = learned_text(result, observed_ids, profile)
                if st.draft is not None or st.edit_rounds != rounds:
                    # The user moved on to the next draft: say which edit this is about.
                    text = "**Learned from your last edit:**\n\n" + text
                yield {self.page.inferred: text}
                return
            waited += LEARN_POLL_S

    def submit(
        self, st: SessionState, edited: str, request: gr.Request | None = None
    ) -> dict[Any, Any]:
        bind_user(st, request)
        return self.finish(st, edited)

    def accept(self, st: SessionState, request: gr.Request | None = None) -> dict[Any, Any]:
        bind_user(st, request)
        return self.finish(st, None)

    def retry_pending(self, st: SessionState, request: gr.Request | None = None) -> dict:
        bind_user(st, request)
        try:
            done = self.ws.retry_pending(self.ws.project(st.project_id).id, st.annotator)
        except Exception as exc:
            return {self.page.status: f"⚠ {user_message(exc)}"}
        return {self.page.status: f"Inferred {done} pending preference(s)."}

    def typed(self, st: SessionState, edited: str | None) -> dict[Any, Any]:
        if st.draft is None:  # no output of this round yet (or already submitted)
            return {self.page.diff: DIFF_HINT}
        return {self.page.diff: live_diff(st.draft_output, edited)}

    def refresh(self, st: SessionState) -> dict[Any, Any]:
        choices = self.choices(st.project_id)
        # The input on screen stays picked after its edit is saved (until another project).
        current = st.draft.input.id if st.draft is not None else st.extra.get(LAST_INPUT)
        if current not in [value for _, value in choices]:
            current = None
        return {self.page.pick: gr.update(choices=choices, value=current)}


def build(ctx: AppContext, state: gr.State) -> dict[str, Any]:
    page = layout()
    h = Handlers(ctx, state, page)
    draft_outputs = [
        state, page.pick, page.applied, page.input_box, page.output_box, page.status,
        page.retry_btn, page.diff,
    ]  # fmt: skip
    page.next_btn.click(h.next, [state], draft_outputs, api_name="edit_next")
    page.gen_btn.click(h.generate, [state, page.pick], draft_outputs, api_name="edit_generate")
    page.retry_btn.click(h.generate, [state, page.pick], draft_outputs, api_name="edit_retry")
    result_outputs = [state, page.status, page.diff, page.distance, page.inferred, page.output_box]
    page.submit_btn.click(
        h.submit, [state, page.output_box], result_outputs, api_name="edit_submit"
    ).then(
        # Its own event: a click's event stays "pending" while it runs and the page drops the
        # next click of a pending button, so watching inside the submit would hold the next
        # edit behind this one's learning.
        h.learned, [state], [page.inferred], show_progress="hidden", api_name="edit_learned"
    )  # fmt: skip
    page.accept_btn.click(h.accept, [state], result_outputs, api_name="edit_accept")
    page.pending_btn.click(h.retry_pending, [state], [page.status], api_name="edit_retry_pending")
    # Typing shows the diff at once; only the last keystroke's request runs, and it runs beside
    # the queue (a pure text diff) so a busy model never delays it.
    page.output_box.input(
        h.typed,
        [state, page.output_box],
        [page.diff],
        trigger_mode="always_last",
        show_progress="hidden",
        queue=False,
    )
    return {"refresh": h.refresh, "refresh_outputs": [page.pick]}
