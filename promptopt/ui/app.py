"""Composes the web app: a header, seven tabs, and the per-session state. Each tab is built by
its own module; this file only wires them together and refreshes a tab when it is opened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from promptopt.ui import theming
from promptopt.ui.context import AppContext, user_message
from promptopt.ui.pairs import PairProducer
from promptopt.ui.state import SessionState, bind_user, clean_annotator
from promptopt.ui.tabs import compare, edit, export, inspect, profile, project, prompts

TITLE = "promptopt"


def build_app(
    store: Any = None,
    client: Any = None,
    embedder: Any = None,
    annotator_default: str = "you",
    *,
    auth_enabled: bool = False,
    seed: int = 0,
    export_dir: Path | None = None,
) -> gr.Blocks:
    """The app over the given parts; real ones (offline default model, MiniLM) when omitted."""
    if store is None:
        from promptopt.storage import open_store

        store = open_store()
    if client is None:
        from promptopt.llm import create_client

        client = create_client(store)
    if embedder is None:
        from promptopt.embeddings import create_embedder

        embedder = create_embedder("default")
    ctx = AppContext(
        store=store,
        client=client,
        embedder=embedder,
        annotator_default=annotator_default,
        seed=seed,
        auth_enabled=auth_enabled,
    )
    if export_dir is not None:
        ctx.export_dir = export_dir
    ctx.pairs = PairProducer(store, client, lambda: ctx.compare, user_message)

    with gr.Blocks(title=TITLE) as demo:
        state = gr.State(
            lambda: SessionState.new(annotator_default),
            delete_callback=lambda st: ctx.pairs.drop(st.session_id),
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
            with gr.Tab("Export", id="export", elem_id="tab-export"):
                export.build(ctx, state)
            with gr.Tab("Inspect", id="inspect", elem_id="tab-inspect") as inspect_tab:
                inspect_parts = inspect.build(ctx, state)

        # Opening a tab shows the current project's data for the current annotator.
        for tab, parts in (
            (project_tab, project_parts),
            (edit_tab, edit_parts),
            (profile_tab, profile_parts),
            (prompts_tab, prompts_parts),
            (inspect_tab, inspect_parts),
        ):
            tab.select(parts["refresh"], [state], parts["refresh_outputs"], show_progress="hidden")

        def enter_compare(
            st: SessionState, request: gr.Request | None = None
        ) -> Iterator[dict[Any, Any]]:
            bind_user(st, request)
            # The first visit starts a pair at once, so the user never faces an empty screen.
            if st.project_id is not None and st.duel is None:
                yield from compare_parts["start"](st)
            else:
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
                st.duel, st.duel_complete, st.draft, st.draft_output = None, False, None, None
                st.votes_this_session = 0
                ctx.pairs.discard(st.session_id)
            return {state: st, header: project.banner(ctx, st)}

        annotator.blur(
            on_annotator, [state, annotator], [state, header, annotator], api_name="set_annotator"
        )
        annotator.submit(on_annotator, [state, annotator], [state, header, annotator])

    demo.queue(default_concurrency_limit=16)
    demo.promptopt_context = ctx  # type: ignore[attr-defined]
    return demo


def launch_kwargs() -> dict[str, Any]:
    """Theme, CSS, keyboard shortcuts: in Gradio 6 these are arguments of ``launch()``."""
    return theming.launch_kwargs()
