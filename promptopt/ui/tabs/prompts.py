"""Prompts tab: the candidate pool as a leaderboard, own candidates, LLM proposals with progress,
promotion of a candidate to the project's prompt, and the learning curves."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from promptopt.ui.context import AppContext, user_message
from promptopt.ui.formatting import (
    LEADERBOARD_HEADERS,
    escape_md,
    leaderboard_rows,
    parse_id,
    plural,
)
from promptopt.ui.state import SessionState, bind_user
from promptopt.workspace import BestReport


def utility_frame(history: list[tuple[int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {"votes": [v for v, _ in history], "utility": [u for _, u in history]},
        columns=["votes", "utility"],
    )


def effort_frame(curve: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {"round": list(range(1, len(curve) + 1)), "edit distance": list(curve)},
        columns=["round", "edit distance"],
    )


# Counts on the x axis: at least this span, so that the axis never ticks between two counts.
MIN_COUNT_SPAN = 10


def count_plot(frame: pd.DataFrame, x: str) -> gr.LinePlot:
    """A plot update whose x axis (a count of votes or rounds) shows whole numbers only."""
    last = int(frame[x].max()) if len(frame) else 0
    return gr.LinePlot(value=frame, x_lim=[0, max(MIN_COUNT_SPAN, last)])


def best_text(report: BestReport | None) -> str:
    if report is None:
        return "No best prompt yet: vote on a few pairs in the Compare tab."
    return (
        f"**Best so far:** prompt #{report.prompt.id}, confidence "
        f"{report.confidence:.0%} after {plural(report.votes, 'vote')}. {escape_md(report.message)}"
    )


def selected_prompt_id(evt: gr.SelectData) -> Any:
    row = evt.row_value or []
    return int(row[1]) if len(row) > 1 else gr.update()


def plots() -> tuple[gr.LinePlot, gr.LinePlot]:
    with gr.Row():
        utility_plot = gr.LinePlot(
            utility_frame([]),
            x="votes",
            y="utility",
            title="Best prompt's estimated utility over votes",
            x_axis_format="d",
            x_lim=[0, MIN_COUNT_SPAN],
            height=260,
        )
        effort_plot = gr.LinePlot(
            effort_frame([]),
            x="round",
            y="edit distance",
            title="Your edit distance per round (words)",
            x_axis_format="d",
            x_lim=[0, MIN_COUNT_SPAN],
            height=260,
        )
    return utility_plot, effort_plot


def build(ctx: AppContext, state: gr.State) -> dict[str, Any]:
    ws = ctx.workspace
    best = gr.Markdown("", elem_id="prompts-best")
    table = gr.Dataframe(
        headers=LEADERBOARD_HEADERS,
        value=[],
        interactive=False,
        wrap=True,
        # Fixed widths for the short columns, so that the prompt's long text wraps inside its own
        # column instead of squeezing the headers letter by letter.
        column_widths=["5%", "4%", "11%", "6%", "7%", "11%", "56%"],
        elem_id="prompts-leaderboard",
        label="Candidate prompts, best first (★ = the project's prompt)",
    )
    with gr.Row():
        refresh_btn = gr.Button("Refresh", size="sm", elem_id="prompts-refresh")
    with gr.Row(equal_height=True):
        promote_id = gr.Textbox(
            label="Prompt id",
            placeholder="click a row of the leaderboard",
            scale=1,
            elem_id="prompts-id",
        )
        promote_btn = gr.Button("Make it the project's prompt", scale=2, elem_id="prompts-promote")
    with gr.Row(equal_height=True):
        own = gr.Textbox(
            label="Add your own candidate (must contain {input})",
            lines=3,
            scale=4,
            elem_id="prompts-own",
        )
        add_btn = gr.Button("Add candidate", scale=1, elem_id="prompts-add")
    with gr.Row(equal_height=True):
        n_new = gr.Slider(1, 8, value=4, step=1, label="How many new proposals", scale=3)
        propose_btn = gr.Button(
            "Propose new prompts", variant="primary", scale=1, elem_id="prompts-propose"
        )
    status = gr.Markdown("", elem_id="prompts-status")
    utility_plot, effort_plot = plots()

    def refresh(st: SessionState, request: gr.Request | None = None) -> dict[Any, Any]:
        bind_user(st, request)
        try:
            project = ws.project(st.project_id)
            rows = ws.leaderboard(project.id, st.annotator)
            report = ws.best(project.id, st.annotator)
            history = ws.utility_history(project.id, st.annotator)
            curve = ws.effort_curve(project.id, st.annotator)
        except Exception as exc:
            return {status: user_message(exc), table: []}
        return {
            best: best_text(report),
            table: leaderboard_rows(rows, project.prompt_id),
            utility_plot: count_plot(utility_frame(history), "votes"),
            effort_plot: count_plot(effort_frame(curve), "round"),
            status: "",
        }

    outputs = [best, table, utility_plot, effort_plot, status]
    refresh_btn.click(refresh, [state], outputs, api_name="leaderboard")

    table.select(selected_prompt_id, None, promote_id)

    def on_add(st: SessionState, text: str, request: gr.Request | None = None) -> dict[Any, Any]:
        bind_user(st, request)
        try:
            prompt = ws.add_candidate(ws.project(st.project_id).id, text)
        except Exception as exc:  # the text stays in the box
            return {status: user_message(exc)}
        ws.forget_pairs(st.session_id)
        result = refresh(st)
        result.update({status: f"Added as prompt #{prompt.id}.", own: ""})
        return result

    add_btn.click(on_add, [state, own], [*outputs, own], api_name="add_candidate")

    def on_propose(
        st: SessionState,
        n: float,
        request: gr.Request | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> dict[Any, Any]:
        bind_user(st, request)
        try:
            project = ws.project(st.project_id)
            progress(0.0, desc="Asking the optimizer model for new prompts")
            made = ws.propose(
                project.id,
                st.annotator,
                n=int(n),
                progress=lambda frac, desc: progress(frac, desc=desc),
            )
        except Exception as exc:
            result = refresh(st)
            result[status] = f"⚠ {user_message(exc)} Press Propose again to retry."
            return result
        ws.forget_pairs(st.session_id)
        result = refresh(st)
        result[status] = f"Added {len(made)} new candidate(s): " + ", ".join(
            f"#{p.id}" for p in made
        )
        return result

    propose_btn.click(on_propose, [state, n_new], outputs, api_name="propose")

    def on_promote(st: SessionState, pid: str | float | None) -> dict[Any, Any]:
        try:
            prompt = ws.promote(ws.project(st.project_id).id, parse_id(pid))
        except Exception as exc:
            return {status: user_message(exc)}
        result = refresh(st)
        result[status] = (
            f"Prompt #{prompt.id} is now the project's prompt (Edit and Export use it)."
        )
        return result

    promote_btn.click(on_promote, [state, promote_id], outputs, api_name="promote")

    return {"refresh": refresh, "refresh_outputs": outputs}
