"""Compare tab: one input, two outputs side by side (sides randomised, prompts hidden until the
vote), five verdicts with keyboard shortcuts, the vote counter and the current best prompt.

The next pair is produced by ``PairProducer`` while the user reads, so a vote only records the
verdict and shows what is already there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from promptopt.ui.context import AppContext, user_message
from promptopt.ui.formatting import escape_md, shorten
from promptopt.ui.pairs import POLL_S, PendingPair
from promptopt.ui.state import SessionState, bind_user

# Screen verdicts: the user judges LEFT ("A") and RIGHT ("B"); the engine's "a"/"b" name prompts.
SCREEN_VERDICTS = {
    "left": ("A better", "1"),
    "right": ("B better", "2"),
    "tie": ("Tie", "3"),
    "both_bad": ("Both bad", "4"),
    "skip": ("Skip", "space"),
}
MIN_POOL = 2  # a duel needs two prompts
FIRST_WAIT_S = 0.12
PROPOSE_FIRST = 3
ELEM_IDS = {
    "left": "vote-a",
    "right": "vote-b",
    "tie": "vote-tie",
    "both_bad": "vote-bad",
    "skip": "vote-skip",
}


def engine_verdict(screen: str, left: str) -> str:
    """Map what the user pressed to the engine's verdict about duel.prompt_a / duel.prompt_b."""
    right = "b" if left == "a" else "a"
    return {"left": left, "right": right}.get(screen, screen)


def counter_text(ctx: AppContext, st: SessionState) -> str:
    if st.project_id is None:
        return ""
    total = ctx.store.comparisons.count(st.project_id, st.annotator)
    who = escape_md(st.annotator)
    return f"**Votes:** {total} by {who} on this project · {st.votes_this_session} this session"


def best_text(ctx: AppContext, st: SessionState) -> str:
    if st.project_id is None:
        return ""
    try:
        best = ctx.compare.best(st.project_id, st.annotator)
    except Exception as exc:
        return user_message(exc)
    if best is None:
        return "**Current best prompt:** none yet; vote on a few pairs."
    lines = [
        f"**Current best prompt** #{best.prompt.id} ({escape_md(best.prompt.origin)}) · "
        f"confidence {best.confidence:.0%} after {best.votes} votes",
        "",
        f"> {escape_md(shorten(best.prompt.text, 400))}",
    ]
    if best.message:
        lines += ["", escape_md(best.message)]
    return "\n".join(lines)


def reveal_text(duel: Any, verdict: str) -> str:
    """After the vote, say which prompt wrote which side."""
    left_prompt, right_prompt = (
        (duel.prompt_a, duel.prompt_b) if duel.left == "a" else (duel.prompt_b, duel.prompt_a)
    )
    said = {
        "left": "A was better",
        "right": "B was better",
        "tie": "a tie",
        "both_bad": "both bad",
        "skip": "skipped",
    }[verdict]
    return (
        f"**Last vote:** {said}. A was prompt #{left_prompt.id} ({escape_md(left_prompt.origin)}): "
        f"*{escape_md(shorten(left_prompt.text, 120))}* · B was prompt #{right_prompt.id} "
        f"({escape_md(right_prompt.origin)}): *{escape_md(shorten(right_prompt.text, 120))}*"
    )


def build(ctx: AppContext, state: gr.State) -> dict[str, Any]:
    with gr.Row():
        counter = gr.Markdown("", elem_id="compare-counter")
    best = gr.Markdown("", elem_id="compare-best")
    input_box = gr.Textbox(
        label="Input", lines=4, max_lines=12, interactive=False, elem_id="compare-input"
    )
    with gr.Row(equal_height=True):
        left_box = gr.Textbox(
            label="Output A",
            lines=10,
            max_lines=30,
            interactive=False,
            elem_id="compare-left",
            buttons=["copy"],
        )
        right_box = gr.Textbox(
            label="Output B",
            lines=10,
            max_lines=30,
            interactive=False,
            elem_id="compare-right",
            buttons=["copy"],
        )
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

    outputs = [state, counter, best, input_box, left_box, right_box, status, retry_btn, reveal]

    def show(st: SessionState, pending: PendingPair, extra: dict[Any, Any]) -> Iterator[dict]:
        """Poll a pair until both outputs are complete, yielding what is there so far."""
        st.duel, st.duel_complete = None, False
        first = True
        # A pair that is ready (prefetched) or nearly ready goes out in one update: every
        # intermediate update costs a round of Gradio's post-processing and a message.
        pending.wait(FIRST_WAIT_S)
        while not pending.done.is_set():
            left, right = pending.texts()
            update: dict[Any, Any] = {
                input_box: pending.duel.input.text if pending.duel else "Preparing the next pair…",
                left_box: left,
                right_box: right,
                status: "Generating…",
                retry_btn: gr.update(visible=False),
            }
            if first:
                update.update(extra)
                update[state] = st
                first = False
            yield update
            pending.wait(POLL_S)
        left, right = pending.texts()
        if pending.error is not None:
            st.duel = pending.duel  # kept, so Retry regenerates the same pair
            yield {
                **extra,
                state: st,
                input_box: pending.duel.input.text if pending.duel else "",
                left_box: left,
                right_box: right,
                status: f"⚠ {escape_md(pending.error)}",
                retry_btn: gr.update(visible=True),
            }
            return
        st.duel, st.duel_complete = pending.duel, True
        ctx.pairs.prefetch(st.session_id, pending.project_id, pending.annotator, pending.duel)
        yield {
            **extra,
            state: st,
            counter: counter_text(ctx, st),
            input_box: pending.duel.input.text,
            left_box: left,
            right_box: right,
            status: "",
            retry_btn: gr.update(visible=False),
        }

    def precheck(st: SessionState) -> str | None:
        try:
            project = ctx.project(st.project_id)
            ctx.compare.ensure_pool(project.id)
        except Exception as exc:
            return user_message(exc)
        if not ctx.store.inputs.list(project.id):
            return "This project has no inputs yet; add some in the Project tab."
        return None

    def fill_pool(st: SessionState) -> Iterator[dict]:
        """A new project has only its base prompt: ask the optimizer for a few to compare."""
        assert st.project_id is not None
        if len(ctx.compare.ensure_pool(st.project_id)) >= MIN_POOL:
            return
        yield {status: "Writing a few candidate prompts to compare (first time only)…"}
        ctx.compare.propose(st.project_id, st.annotator, n=PROPOSE_FIRST)
        ctx.pairs.discard(st.session_id)

    def on_start(st: SessionState, request: gr.Request | None = None) -> Iterator[dict]:
        bind_user(st, request)
        problem = precheck(st)
        if problem:
            yield {status: problem}
            return
        assert st.project_id is not None
        try:
            yield from fill_pool(st)
        except Exception as exc:
            st.duel = None
            yield {state: st, status: f"⚠ {user_message(exc)}", retry_btn: gr.update(visible=True)}
            return
        pending = ctx.pairs.take(st.session_id, st.project_id, st.annotator)
        yield from show(st, pending, {counter: counter_text(ctx, st), best: best_text(ctx, st)})

    start_btn.click(on_start, [state], outputs, api_name="compare_start")

    def on_retry(st: SessionState, request: gr.Request | None = None) -> Iterator[dict]:
        bind_user(st, request)
        problem = precheck(st)
        if problem:
            yield {status: problem}
            return
        if st.duel is None:  # the failure came before a duel existed: start over
            yield from on_start(st)
            return
        assert st.project_id is not None
        pending = ctx.pairs.start(st.session_id, st.project_id, st.annotator, duel=st.duel)
        yield from show(st, pending, {})

    retry_btn.click(on_retry, [state], outputs, api_name="compare_retry")

    def make_vote(screen: str) -> Any:
        def on_vote(
            st: SessionState, note: str, request: gr.Request | None = None
        ) -> Iterator[dict]:
            bind_user(st, request)
            started = time.perf_counter()
            duel = st.duel
            if duel is None or not st.duel_complete:
                yield {status: "Wait until both outputs are complete (or press Start)."}
                return
            try:
                ctx.compare.record_vote(
                    duel, engine_verdict(screen, duel.left), st.annotator, comment=note or ""
                )
            except Exception as exc:  # the pair stays on screen: press the key again
                yield {status: f"⚠ The vote was not saved: {user_message(exc)} Vote again."}
                return
            st.votes_this_session += 1
            assert st.project_id is not None
            pending = ctx.pairs.take(st.session_id, st.project_id, st.annotator, voted=duel)
            extra = {
                counter: counter_text(ctx, st),
                best: best_text(ctx, st),
                reveal: reveal_text(duel, screen),
                comment: "",
            }
            for update in show(st, pending, extra):
                if st.duel_complete:
                    ctx.timings.append(("vote", (time.perf_counter() - started) * 1000))
                yield update

        return on_vote

    for key, btn in vote_btns.items():
        btn.click(
            make_vote(key),
            [state, comment],
            [*outputs, comment],
            api_name=f"vote_{key}",
            show_progress="hidden",
            trigger_mode="once",
        )

    def refresh(st: SessionState, request: gr.Request | None = None) -> dict[Any, Any]:
        bind_user(st, request)
        return {counter: counter_text(ctx, st), best: best_text(ctx, st)}

    return {
        "refresh": refresh,
        "refresh_outputs": [counter, best],
        "start": on_start,
        "start_outputs": outputs,
    }
