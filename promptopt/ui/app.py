"""Composes the web app: a header, seven tabs, and the per-session state. Each tab is built by
its own module; this file only wires them together and refreshes a tab when it is opened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from promptopt.ui import theming
from promptopt.ui.context import AppContext
from promptopt.ui.state import SessionState, bind_user, clean_annotator
from promptopt.ui.tabs import compare, edit, export, inspect, profile, project, prompts
from promptopt.workspace import Workspace, make_parts, make_workspace

TITLE = "promptopt"


def build_app(
    workspace: Workspace | None = None,
    annotator_default: str = "you",
    *,
    auth_enabled: bool = False,
) -> gr.Blocks:
    """The app over a workspace; one over the real parts (the SQLite store in PROMPTOPT_HOME,
    the offline default model, MiniLM) when omitted."""
    if workspace is None:
        workspace = make_workspace(make_parts())
    ctx = AppContext(
        workspace=workspace, annotator_default=annotator_default, auth_enabled=auth_enabled
    )

    with gr.Blocks(title=TITLE) as demo:
        state = gr.State(
            lambda: SessionState.new(annotator_default),
            delete_callback=lambda st: workspace.end_session(st.session_id),
        )
        with gr.Row(equal_height=True, elem_id="header"):
            gr.Markdown(
                f"## {TITLE}\nFind the prompt you want by comparing and editing outputs.",
                elem_id="title",
            )
            header = gr.Markdown(
                "**No project open.** Open a sample below or create a project.",
                elem_id="banner",
            )
            annotator = gr.Textbox(
                label="Annotator",
                value=annotator_default,
                max_lines=1,
                scale=0,
                min_width=160,
                elem_id="annotator",
                info="whose votes, edits and profile",
            )

        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Project", id="project", elem_id="tab-project") as project_tab:
                project_parts = project.build(ctx, state, header)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare") as compare_tab:
                compare_parts = compare.build(ctx, state)
            with gr.Tab("Edit", id="edit", elem_id="tab-edit") as edit_tab:
                edit_parts = edit.build(ctx, state)
            with gr.Tab("Profile", id="profile", elem_id="tab-profile") as profile_tab:
                profile_parts = profile.build(ctx, state)
            with gr.Tab("Prompts", id="prompts", elem_id="tab-prompts") as prompts_tab:
                prompts_parts = prompts.build(ctx, state)
            with gr.Tab("Export", id="export", elem_id="tab-export") as export_tab:
                export.build(ctx, state)
            with gr.Tab("Inspect", id="inspect", elem_id="tab-inspect") as inspect_tab:
                inspect_parts = inspect.build(ctx, state)

        # Opening a tab shows the current project's data for the current annotator; leaving
        # Compare stops generating pairs ahead for this session.
        for tab, parts in (
            (project_tab, project_parts),
            (edit_tab, edit_parts),
            (profile_tab, profile_parts),
            (prompts_tab, prompts_parts),
            (inspect_tab, inspect_parts),
        ):
            tab.select(
                leaving_compare(workspace, parts["refresh"]),
                [state],
                parts["refresh_outputs"],
                show_progress="hidden",
            )
        export_tab.select(lambda st: workspace.leave_compare(st.session_id), [state], None)

        def enter_compare(
            st: SessionState, request: gr.Request | None = None
        ) -> Iterator[dict[Any, Any]]:
            bind_user(st, request)
            # The first visit starts a pair at once, so the user never faces an empty screen.
            if st.project_id is not None and st.duel is None:
                yield from compare_parts["start"](st)
                return
            if st.duel is not None and st.duel_complete:
                # Back from another tab: generate the pair that follows the one on screen again.
                workspace.resume_compare(st.session_id, st.duel, st.annotator)
            yield compare_parts["refresh"](st)

        compare_tab.select(enter_compare, [state], compare_parts["start_outputs"])

        def on_load(st: SessionState, request: gr.Request) -> dict[Any, Any]:
            bind_user(st, request)
            if not st.locked_annotator:
                # Returning the state here could overwrite a click that raced the page load.
                return {header: project.banner(ctx, st)}
            return {
                state: st,
                annotator: gr.update(value=st.annotator, interactive=False),
                header: project.banner(ctx, st),
            }

        demo.load(on_load, [state], [state, annotator, header], show_progress="hidden")

        def on_annotator(
            st: SessionState, name: str, request: gr.Request | None = None
        ) -> dict[Any, Any]:
            bind_user(st, request)
            if st.locked_annotator:
                return {annotator: st.annotator}
            new = clean_annotator(name, annotator_default)
            if new != st.annotator:
                st.annotator = new
                st.reset_work(votes=True)
                workspace.forget_pairs(st.session_id)
            return {state: st, header: project.banner(ctx, st)}

        annotator.blur(
            on_annotator, [state, annotator], [state, header, annotator], api_name="set_annotator"
        )
        annotator.submit(on_annotator, [state, annotator], [state, header, annotator])

    demo.queue(default_concurrency_limit=16)
    demo.promptopt_context = ctx  # type: ignore[attr-defined]
    return demo


def leaving_compare(workspace: Workspace, refresh: Callable[..., Any]) -> Callable[..., Any]:
    """A tab's refresh that first tells the pair pipeline the session left Compare."""

    def handler(st: SessionState, request: gr.Request | None = None) -> Any:
        workspace.leave_compare(st.session_id)
        return refresh(st, request) if _takes_request(refresh) else refresh(st)

    return handler


def _takes_request(fn: Callable[..., Any]) -> bool:
    import inspect as _inspect

    return "request" in _inspect.signature(fn).parameters


def launch_kwargs() -> dict[str, Any]:
    """Theme, CSS, keyboard shortcuts: in Gradio 6 these are arguments of ``launch()``."""
    return theming.launch_kwargs()
