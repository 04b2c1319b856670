"""Compare tab: one input, two outputs side by side (sides randomised, prompts hidden until the
vote), five verdicts with keyboard shortcuts, the vote counter and the current best prompt.
While a pair is being written, "Cut short" (Esc) stops both outputs and keeps what they have.

A vote is one call into the workspace: it records the verdict, refits once and returns the next
pair (generated while the user read), the counter and the best prompt."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from promptopt.ui.context import AppContext, user_message
from promptopt.ui.formatting import Rate, escape_md, plural, shorten
from promptopt.ui.state import SessionState, bind_user
from promptopt.workspace import POLL_S, BestReport, Duel, PendingPair, screen_prompts

# Screen verdicts: the user judges LEFT ("A") and RIGHT ("B"); the engine's "a"/"b" name prompts.
SCREEN_VERDICTS = {
    "left": ("A better", "1"),
    "right": ("B better", "2"),
    "tie": ("Tie", "3"),
    "both_bad": ("Both bad", "4"),
    "skip": ("Skip", "space"),
}
SAID = {
    "left": "A was better",
    "right": "B was better",
    "tie": "a tie",
    "both_bad": "both bad",
    "skip": "skipped",
}
MIN_POOL = 2  # a duel needs two prompts
FIRST_WAIT_S = 0.12
CUT_NOTE = "✂ Cut short: both outputs keep what was written so far; vote on them."
PROPOSE_FIRST = 3
ELEM_IDS = {
    "left": "vote-a",
    "right": "vote-b",
    "tie": "vote-tie",
    "both_bad": "vote-bad",
    "skip": "vote-skip",
}

Updates = Iterator[dict[Any, Any]]
log = logging.getLogger("promptopt.ui")


def counter_text(st: SessionState, total: int) -> str:
    who = escape_md(st.annotator)
    return f"**Votes:** {total} by {who} on this project · {st.votes_this_session} this session"


def best_text(best: BestReport | None) -> str:
    if best is None:
        return "**Current best prompt:** none yet; vote on a few pairs."
    lines = [
        f"**Current best prompt** #{best.prompt.id} ({escape_md(best.prompt.origin)}) · "
        f"confidence {best.confidence:.0%} after {plural(best.votes, 'vote')}",
        "",
        f"> {escape_md(shorten(best.prompt.text, 400))}",
    ]
    if best.message:
        lines += ["", escape_md(best.message)]
    return "\n".join(lines)


def reveal_text(duel: Duel, verdict: str) -> str:
    """After the vote, say which prompt wrote which side."""
    left_prompt, right_prompt = screen_prompts(duel)
    return (
        f"**Last vote:** {SAID[verdict]}. A was prompt #{left_prompt.id} "
        f"({escape_md(left_prompt.origin)}): *{escape_md(shorten(left_prompt.text, 120))}* · "
        f"B was prompt #{right_prompt.id} ({escape_md(right_prompt.origin)}): "
        f"*{escape_md(shorten(right_prompt.text, 120))}*"
    )


@dataclass
class ComparePage:
    counter: gr.Markdown
    best: gr.Markdown
    input_box: gr.Textbox
    left_box: gr.Textbox
    right_box: gr.Textbox
    vote_btns: dict[str, gr.Button]
    comment: gr.Textbox
    status: gr.Markdown
    start_btn: gr.Button
    retry_btn: gr.Button
    reveal: gr.Markdown
    progress: gr.Markdown  # above the pair boxes, where the user looks while waiting
    stop_btn: gr.Button  # shown while a pair is being written

    def outputs(self, state: gr.State) -> list[Any]:
        return [
            state,
            self.counter,
            self.best,
            self.input_box,
            self.left_box,
            self.right_box,
            self.status,
            self.retry_btn,
            self.reveal,
            self.progress,
            self.stop_btn,
        ]


def layout() -> ComparePage:
    with gr.Row():
        counter = gr.Markdown("", elem_id="compare-counter")
    best = gr.Markdown("", elem_id="compare-best")
    input_box = gr.Textbox(
        label="Input", lines=4, max_lines=12, interactive=False, elem_id="compare-input"
    )
    with gr.Row(equal_height=True):
        progress = gr.Markdown("", elem_id="compare-progress")
        stop_btn = gr.Button(
            "Cut short  [Esc]",
            size="sm",
            scale=0,
            min_width=140,
            visible=False,
            elem_id="compare-stop",
        )
    with gr.Row(equal_height=True):
        boxes = [
            gr.Textbox(
                label=f"Output {side}",
                lines=10,
                max_lines=30,
                interactive=False,
                elem_id=f"compare-{key}",
                buttons=["copy"],
            )
            for side, key in (("A", "left"), ("B", "right"))
        ]
    with gr.Row():
        vote_btns = {
            key: gr.Button(
                f"{label}  [{shortcut}]",
                variant="primary" if key in ("left", "right") else "secondary",
                elem_id=ELEM_IDS[key],
                elem_classes=["vote-button"],
            )
            for key, (label, shortcut) in SCREEN_VERDICTS.items()
        }
    comment = gr.Textbox(
        label="Comment (optional, saved with the vote)", lines=1, elem_id="compare-comment"
    )
    status = gr.Markdown("", elem_id="compare-status")
    with gr.Row():
        start_btn = gr.Button("Start / new pair", size="sm", elem_id="compare-start")
        retry_btn = gr.Button("Retry", size="sm", visible=False, elem_id="compare-retry")
    reveal = gr.Markdown("", elem_id="compare-reveal")
    return ComparePage(
        counter, best, input_box, boxes[0], boxes[1], vote_btns, comment, status, start_btn,
        retry_btn, reveal, progress, stop_btn,
    )  # fmt: skip


class Handlers:
    """The tab's event handlers over one page; each a thin call into the workspace."""

    def __init__(self, ctx: AppContext, state: gr.State, page: ComparePage) -> None:
        self.ctx, self.state, self.page = ctx, state, page
        self.ws = ctx.workspace

    def counter(self, st: SessionState) -> str:
        if st.project_id is None:
            return ""
        return counter_text(st, self.ws.vote_count(st.project_id, st.annotator))

    def best(self, st: SessionState) -> str:
        if st.project_id is None:
            return ""
        try:
            return best_text(self.ws.best(st.project_id, st.annotator))
        except Exception as exc:
            return user_message(exc)

    def show(
        self,
        st: SessionState,
        pending: PendingPair,
        extra: dict[Any, Any],
        reserve: bool = True,
    ) -> Updates:
        """Poll a pair until both outputs are complete, yielding what is there so far. With
        ``reserve``, the pair after it starts generating once it is complete (a vote has
        reserved it already)."""
        p = self.page
        st.duel, st.duel_complete = None, False
        first = True
        # A pair that is ready (made ahead) or nearly ready goes out in one update: every
        # intermediate update costs a round of Gradio's post-processing and a message.
        pending.wait(FIRST_WAIT_S)
        rate = Rate()
        while not pending.done.is_set():
            left, right = pending.texts()
            tokens = len(pending.left) + len(pending.right)
            what = "Writing both outputs…" if tokens else "Starting the model…"
            update: dict[Any, Any] = {
                p.input_box: pending.duel.input.text if pending.duel else "Preparing the pair…",
                p.left_box: left,
                p.right_box: right,
                p.progress: rate.text(what, tokens),
            }
            if first:
                # Once only: a key pressed meanwhile says what to do there, and must stay read.
                update[p.status] = "Generating…"
                update[p.retry_btn] = gr.update(visible=False)
                update[p.stop_btn] = gr.update(visible=True)
                update.update(extra)
                update[self.state] = st
                first = False
            yield update
            pending.wait(POLL_S)
        left, right = pending.texts()
        text = pending.duel.input.text if pending.duel else ""
        if pending.error is not None:
            st.duel = pending.duel  # kept, so Retry regenerates the same pair
            yield {
                **extra,
                self.state: st,
                p.input_box: text,
                p.left_box: left,
                p.right_box: right,
                p.status: f"⚠ {escape_md(pending.error)}",
                p.progress: "",
                p.retry_btn: gr.update(visible=True),
                p.stop_btn: gr.update(visible=False),
            }
            return
        assert pending.duel is not None
        st.duel, st.duel_complete = pending.duel, True
        if reserve:
            try:  # the pair after this one is generated while the user reads
                self.ws.reserve_after(st.session_id, pending.duel, st.annotator)
            except Exception:  # only the head start is lost
                log.warning("reserving the pair after %s failed", pending.duel.id, exc_info=True)
        counter = extra[p.counter] if p.counter in extra else self.counter(st)
        yield {
            **extra,
            p.counter: counter,
            self.state: st,
            p.input_box: text,
            p.left_box: left,
            p.right_box: right,
            p.status: "",
            p.progress: CUT_NOTE if pending.cut_short else "",
            p.retry_btn: gr.update(visible=False),
            p.stop_btn: gr.update(visible=False),
        }

    def fill_pool(self, st: SessionState) -> Updates:
        """A new project has only its base prompt: ask the optimizer for a few to compare."""
        assert st.project_id is not None
        if self.ws.pool_size(st.project_id) >= MIN_POOL:
            return
        what = "Preparing a candidate prompt to compare with yours (first time)…"
        yield {self.page.status: what}
        # In a thread, so that the page shows the seconds passing while the model writes.
        failed: list[BaseException] = []

        def work() -> None:
            try:
                self.ws.seed_pool(project_id, st.annotator, more=PROPOSE_FIRST - 1)
            except BaseException as exc:
                failed.append(exc)

        project_id = st.project_id
        worker = threading.Thread(target=work, daemon=True, name="promptopt-seed")
        worker.start()
        rate = Rate()
        while worker.is_alive():
            worker.join(0.5)
            yield {self.page.progress: rate.text(what)}
        yield {self.page.progress: ""}
        if failed:
            raise failed[0]
        self.ws.forget_pairs(st.session_id)

    def start(self, st: SessionState, request: gr.Request | None = None) -> Updates:
        bind_user(st, request)
        p = self.page
        problem = self.ws.compare_problem(st.project_id)
        if problem:
            yield {p.status: escape_md(problem)}
            return
        assert st.project_id is not None
        try:
            # A project opened on the Project screen has its first pair (and pool) on the way.
            if not self.ws.first_pair_on_its_way(st.session_id, st.project_id, st.annotator):
                yield from self.fill_pool(st)
        except Exception as exc:
            st.duel = None
            yield {
                self.state: st,
                p.status: f"⚠ {user_message(exc)}",
                p.retry_btn: gr.update(visible=True),
            }
            return
        pending = self.ws.start_pair(st.session_id, st.project_id, st.annotator)
        yield from self.show(st, pending, {p.best: self.best(st)})

    def retry(self, st: SessionState, request: gr.Request | None = None) -> Updates:
        bind_user(st, request)
        problem = self.ws.compare_problem(st.project_id)
        if problem:
            yield {self.page.status: escape_md(problem)}
            return
        if st.duel is None:  # the failure came before a duel existed: start over
            yield from self.start(st)
            return
        pending = self.ws.retry_pair(st.session_id, st.duel, st.annotator)
        yield from self.show(st, pending, {})

    def vote(self, screen: str) -> Callable[..., Updates]:
        p = self.page

        def on_vote(st: SessionState, note: str, request: gr.Request | None = None) -> Updates:
            bind_user(st, request)
            started = time.perf_counter()
            duel = st.duel
            if duel is None or not st.duel_complete:
                yield {p.status: "Wait until both outputs are complete, or cut them short (Esc)."}
                return
            try:
                outcome = self.ws.vote(st.session_id, duel, screen, st.annotator, note or "")
            except Exception as exc:  # the pair stays on screen: press the key again
                yield {p.status: f"⚠ The vote was not saved: {user_message(exc)} Vote again."}
                return
            st.votes_this_session += 1
            extra = {
                p.counter: counter_text(st, outcome.votes),
                p.best: best_text(outcome.best),
                p.reveal: reveal_text(duel, screen),
                p.comment: "",
            }
            for update in self.show(st, outcome.pending, extra, reserve=not outcome.reserved):
                if st.duel_complete:
                    self.ctx.timings.append(("vote", (time.perf_counter() - started) * 1000))
                yield update

        return on_vote

    def cut_short(self, st: SessionState) -> dict[Any, Any]:
        """Stop the pair being written; the pair's own handler then shows it complete."""
        problem = self.ws.cut_pair(st.session_id)
        return {} if problem is None else {self.page.progress: escape_md(problem)}

    def refresh(self, st: SessionState, request: gr.Request | None = None) -> dict[Any, Any]:
        bind_user(st, request)
        return {self.page.counter: self.counter(st), self.page.best: self.best(st)}


def build(ctx: AppContext, state: gr.State) -> dict[str, Any]:
    page = layout()
    handlers = Handlers(ctx, state, page)
    outputs = page.outputs(state)
    page.start_btn.click(handlers.start, [state], outputs, api_name="compare_start")
    page.retry_btn.click(handlers.retry, [state], outputs, api_name="compare_retry")
    page.stop_btn.click(
        handlers.cut_short,
        [state],
        [page.progress],
        api_name="compare_cut_short",
        show_progress="hidden",
        trigger_mode="once",
    )
    for key, btn in page.vote_btns.items():
        btn.click(
            handlers.vote(key),
            [state, page.comment],
            [*outputs, page.comment],
            api_name=f"vote_{key}",
            show_progress="hidden",
            trigger_mode="once",
        )
    return {
        "refresh": handlers.refresh,
        "refresh_outputs": [page.counter, page.best],
        "start": handlers.start,
        "start_outputs": outputs,
    }
