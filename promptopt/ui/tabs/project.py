"""Project tab: create, open, rename and delete projects; the task, the base prompt and the models;
inputs typed, pasted or imported from CSV, JSONL or TXT (with a preview and the bad rows)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import gradio as gr

from promptopt.generation import validate_template
from promptopt.inputs_io import guess_format, parse_inputs_text
from promptopt.projects import SAMPLES, create_project, load_sample
from promptopt.storage.models import Project
from promptopt.ui.context import MODEL_CHOICES, AppContext, user_message
from promptopt.ui.formatting import escape_md, shorten
from promptopt.ui.state import SessionState

INPUT_HEADERS = ["id", "input", "source"]
SPLIT_LINES = "one input per line"
SPLIT_BLANK = "inputs separated by a blank line"
IMPORT_CHUNK = 200


def project_choices(ctx: AppContext) -> list[tuple[str, int]]:
    return [(p.name, p.id) for p in ctx.store.projects.list()]


def banner(ctx: AppContext, state: SessionState) -> str:
    who = f"annotator **{escape_md(state.annotator)}**"
    if state.project_id is None:
        return f"**No project open.** Open a sample or create a project · {who}"
    try:
        project = ctx.project(state.project_id)
    except Exception:
        return f"**No project open.** · {who}"
    n_inputs = len(ctx.store.inputs.list(project.id))
    return f"**Project:** {escape_md(project.name)} · {n_inputs} inputs · {who}"


def _split_typed(text: str, mode: str) -> list[str]:
    if mode == SPLIT_BLANK:
        blocks = [b.strip() for b in text.replace("\r\n", "\n").split("\n\n")]
        return [b for b in blocks if b]
    return [line.strip() for line in text.splitlines() if line.strip()]


def build(ctx: AppContext, state: gr.State, header: gr.Markdown) -> dict[str, Any]:
    """Build the tab inside the current ``gr.Tab`` and wire its events."""
    default_model = ctx.default_model()
    with gr.Row(equal_height=True):
        project_pick = gr.Dropdown(
            label="Projects", choices=project_choices(ctx), value=None, scale=4
        )
        open_btn = gr.Button("Open", variant="primary", scale=1, elem_id="project-open")
    if SAMPLES:
        gr.Markdown("**Sample projects** (one click):")
        with gr.Row():
            sample_btns = [
                gr.Button(
                    f"Open sample: {desc.split(':', 1)[0]}",
                    size="sm",
                    elem_id=f"sample-{key}",
                )
                for key, desc in SAMPLES.items()
            ]
    else:
        sample_btns = []
    status = gr.Markdown("", elem_id="project-status")

    with gr.Group():
        name = gr.Textbox(label="Name", placeholder="My summarizer", elem_id="project-name")
        task = gr.Textbox(
            label="Task description",
            placeholder="What should the outputs do? (for people and for the prompt optimizer)",
            lines=2,
        )
        template = gr.Textbox(
            label="Base prompt template (must contain {input})",
            lines=5,
            placeholder="Summarize this article in three sentences:\n\n{input}",
            elem_id="project-template",
        )
        with gr.Row():
            generator = gr.Dropdown(
                label="Generator model (writes the outputs)",
                choices=MODEL_CHOICES,
                value=default_model,
                allow_custom_value=True,
            )
            optimizer = gr.Dropdown(
                label="Optimizer model (proposes prompts, infers preferences)",
                choices=MODEL_CHOICES,
                value=default_model,
                allow_custom_value=True,
            )
        api_base = gr.Textbox(
            label="Base URL for an OpenAI-compatible server (optional; e.g. http://localhost:8000/v1)",
            placeholder="leave empty for the model's own provider",
        )
    with gr.Row():
        create_btn = gr.Button("Create new project", variant="primary", elem_id="project-create")
        save_btn = gr.Button("Save changes (rename, task, prompt, models)")
        delete_btn = gr.Button("Delete project…", variant="stop")
    with gr.Row(visible=False) as confirm_row:
        confirm_text = gr.Markdown("")
        confirm_btn = gr.Button("Yes, delete it", variant="stop", elem_id="project-delete-confirm")
        cancel_btn = gr.Button("Cancel")

    gr.Markdown("### Inputs")
    with gr.Row():
        with gr.Column():
            typed = gr.Textbox(
                label="Type or paste inputs",
                lines=6,
                placeholder="One input per line (or pick blank-line separation below)",
                elem_id="inputs-typed",
            )
            split = gr.Radio([SPLIT_LINES, SPLIT_BLANK], value=SPLIT_LINES, show_label=False)
            add_btn = gr.Button("Add inputs", elem_id="inputs-add")
        with gr.Column():
            upload = gr.File(
                label="Import a CSV, JSONL or TXT file",
                file_types=[".csv", ".tsv", ".jsonl", ".ndjson", ".txt"],
                type="filepath",
            )
            column = gr.Dropdown(
                label="Column holding the input", choices=[], visible=False, allow_custom_value=True
            )
            problems = gr.Markdown("")
            import_btn = gr.Button("Import these inputs", interactive=False)
    preview = gr.Dataframe(
        headers=["preview"], value=[], label="Import preview (first 10)", visible=False
    )
    inputs_table = gr.Dataframe(
        headers=INPUT_HEADERS, value=[], label="Inputs of this project", interactive=False
    )

    form = [name, task, template, generator, optimizer, api_base]

    def fields(project: Project | None) -> dict[Any, Any]:
        if project is None:
            return {
                name: "",
                task: "",
                template: "",
                generator: default_model,
                optimizer: default_model,
                api_base: "",
                inputs_table: [],
            }
        inputs = ctx.store.inputs.list(project.id)
        return {
            name: project.name,
            task: project.task,
            template: project.template,
            generator: project.generator_model or default_model,
            optimizer: project.optimizer_model or default_model,
            api_base: (project.settings or {}).get("api_base") or "",
            inputs_table: [[i.id, shorten(i.text, 200), i.source or ""] for i in inputs],
        }

    def opened(st: SessionState, project: Project, message: str) -> dict[Any, Any]:
        if st.project_id != project.id:
            st.duel, st.duel_complete, st.draft, st.draft_output = None, False, None, None
            ctx.pairs.discard(st.session_id)
        st.project_id = project.id
        # The Compare tab says why when this fails; the project itself is fine.
        with contextlib.suppress(Exception):
            ctx.compare.ensure_pool(project.id)
        return {
            state: st,
            status: message,
            header: banner(ctx, st),
            project_pick: gr.update(choices=project_choices(ctx), value=project.id),
            confirm_row: gr.update(visible=False),
            **fields(project),
        }

    outputs = [state, status, header, project_pick, confirm_row, *form, inputs_table]

    def on_open(st: SessionState, project_id: int | None) -> dict[Any, Any]:
        if project_id is None:
            return {status: "Pick a project in the list first, or open a sample."}
        try:
            project = ctx.store.projects.get(int(project_id))
        except Exception as exc:
            return {status: user_message(exc)}
        return opened(st, project, f"Opened **{escape_md(project.name)}**.")

    open_btn.click(on_open, [state, project_pick], outputs, api_name="open_project")

    def on_sample(key: str) -> Any:
        def handler(st: SessionState) -> dict[Any, Any]:
            try:
                project = load_sample(ctx.store, key)
            except Exception as exc:
                return {status: user_message(exc)}
            ctx.embed_inputs_later(project.id)
            return opened(st, project, f"Opened the sample **{escape_md(project.name)}**.")

        return handler

    for key, btn in zip(SAMPLES, sample_btns, strict=True):
        btn.click(on_sample(key), [state], outputs, api_name=f"open_sample_{key.replace('-', '_')}")

    def settings_of(api: str) -> dict[str, Any]:
        return {"api_base": api.strip()} if api and api.strip() else {}

    def model_of(value: str | None) -> str | None:
        value = (value or "").strip()
        return value or None

    def on_create(
        st: SessionState, nm: str, tk: str, tpl: str, gen: str, opt: str, api: str
    ) -> dict[Any, Any]:
        try:
            project = create_project(
                ctx.store,
                nm,
                tpl,
                task=tk,
                generator_model=model_of(gen),
                optimizer_model=model_of(opt),
                settings=settings_of(api),
            )
        except Exception as exc:  # the form keeps everything the user typed
            return {status: user_message(exc)}
        return opened(st, project, f"Created **{escape_md(project.name)}**. Now add inputs.")

    create_btn.click(on_create, [state, *form], outputs, api_name="create_project")

    def on_save(
        st: SessionState, nm: str, tk: str, tpl: str, gen: str, opt: str, api: str
    ) -> dict[Any, Any]:
        try:
            project = ctx.project(st.project_id)
            validate_template(tpl)
            settings = {**(project.settings or {}), **settings_of(api)}
            if not api.strip():
                settings.pop("api_base", None)
            updates: dict[str, Any] = {
                "name": nm,
                "task": tk,
                "generator_model": model_of(gen),
                "optimizer_model": model_of(opt),
                "settings": settings,
            }
            if tpl != project.template:
                # A changed base prompt joins the pool as a candidate and becomes the project's.
                prompt = ctx.compare.add_candidate(project.id, tpl, origin="user")
                updates.update(template=tpl, prompt_id=prompt.id)
                ctx.pairs.discard(st.session_id)
            project = ctx.store.projects.update(project.id, **updates)
        except Exception as exc:
            return {status: user_message(exc)}
        return opened(st, project, "Saved.")

    save_btn.click(on_save, [state, *form], outputs, api_name="save_project")

    def on_delete(st: SessionState) -> dict[Any, Any]:
        try:
            project = ctx.project(st.project_id)
        except Exception as exc:
            return {status: user_message(exc)}
        votes = ctx.store.comparisons.count(project.id)
        edits = len(ctx.store.edits.list(project.id))
        return {
            confirm_row: gr.update(visible=True),
            confirm_text: (
                f"Delete **{escape_md(project.name)}** with its {votes} votes and {edits} edits? "
                "This cannot be undone."
            ),
        }

    delete_btn.click(on_delete, [state], [confirm_row, confirm_text, status])

    def on_confirm(st: SessionState) -> dict[Any, Any]:
        try:
            project = ctx.project(st.project_id)
            ctx.store.projects.delete(project.id)
        except Exception as exc:
            return {status: user_message(exc), confirm_row: gr.update(visible=False)}
        st.project_id, st.duel, st.draft = None, None, None
        ctx.pairs.discard(st.session_id)
        return {
            state: st,
            status: f"Deleted **{escape_md(project.name)}**.",
            header: banner(ctx, st),
            project_pick: gr.update(choices=project_choices(ctx), value=None),
            confirm_row: gr.update(visible=False),
            **fields(None),
        }

    confirm_btn.click(on_confirm, [state], outputs, api_name="delete_project")
    cancel_btn.click(lambda: gr.update(visible=False), None, confirm_row)

    # -- inputs ---------------------------------------------------------------------------------
    def on_add(st: SessionState, text: str, mode: str) -> dict[Any, Any]:
        try:
            project = ctx.project(st.project_id)
            texts = _split_typed(text or "", mode)
            if not texts:
                return {status: "Type or paste at least one input first."}
            ids = ctx.store.inputs.add_many(project.id, texts, source="typed")
        except Exception as exc:
            return {status: user_message(exc)}
        ctx.embed_inputs_later(project.id)
        return {
            status: f"Added {len(ids)} inputs.",
            typed: "",
            header: banner(ctx, st),
            inputs_table: fields(project)[inputs_table],
        }

    add_btn.click(
        on_add,
        [state, typed, split],
        [status, typed, header, inputs_table],
        api_name="add_inputs",
    )

    def parse_upload(path: str | None, col: str | None) -> tuple[Any, str]:
        if not path:
            return None, ""
        raw = Path(path).read_text(encoding="utf-8")
        fmt = guess_format(path)
        return parse_inputs_text(raw, fmt, col or None), fmt

    def on_upload(path: str | None, col: str | None = None) -> dict[Any, Any]:
        if not path:
            return {
                column: gr.update(visible=False, choices=[], value=None),
                preview: gr.update(visible=False, value=[]),
                problems: "",
                import_btn: gr.update(interactive=False),
            }
        try:
            result, fmt = parse_upload(path, col)
        except UnicodeDecodeError:
            return {problems: "This file is not UTF-8 text; save it as UTF-8 and upload it again."}
        except Exception as exc:
            return {problems: user_message(exc), import_btn: gr.update(interactive=False)}
        lines = [f"**{len(result.texts)} inputs** read from this {fmt.upper()} file."]
        if result.problems:
            lines.append(f"{len(result.problems)} rows skipped:")
            lines += [f"- {escape_md(p)}" for p in result.problems[:20]]
            if len(result.problems) > 20:
                lines.append(f"- … and {len(result.problems) - 20} more")
        return {
            column: gr.update(
                visible=bool(result.columns), choices=result.columns, value=result.column
            ),
            preview: gr.update(visible=True, value=[[shorten(t, 200)] for t in result.texts[:10]]),
            problems: "\n".join(lines),
            import_btn: gr.update(interactive=bool(result.texts)),
        }

    upload_outputs = [column, preview, problems, import_btn]
    upload.change(lambda p: on_upload(p, None), [upload], upload_outputs)
    column.input(on_upload, [upload, column], upload_outputs)

    def on_import(
        st: SessionState,
        path: str | None,
        col: str | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> dict[Any, Any]:
        try:
            project = ctx.project(st.project_id)
            result, _ = parse_upload(path, col)
            if result is None or not result.texts:
                return {status: "Upload a file with at least one good row first."}
            source = Path(path or "file").name
            total = len(result.texts)
            added = 0
            for start in range(0, total, IMPORT_CHUNK):
                progress(start / total, desc=f"Importing inputs {start}/{total}")
                added += len(
                    ctx.store.inputs.add_many(
                        project.id, result.texts[start : start + IMPORT_CHUNK], source=source
                    )
                )
        except Exception as exc:
            return {status: user_message(exc)}
        ctx.embed_inputs_later(project.id)
        skipped = f" ({len(result.problems)} bad rows skipped)" if result.problems else ""
        return {
            status: f"Imported {added} inputs from {escape_md(source)}{skipped}.",
            header: banner(ctx, st),
            inputs_table: fields(project)[inputs_table],
        }

    import_btn.click(
        on_import, [state, upload, column], [status, header, inputs_table], api_name="import_inputs"
    )

    def refresh(st: SessionState) -> dict[Any, Any]:
        project = None
        if st.project_id is not None:
            try:
                project = ctx.project(st.project_id)
            except Exception:
                project = None
        return {
            project_pick: gr.update(
                choices=project_choices(ctx), value=project.id if project else None
            ),
            **fields(project),
        }

    return {
        "refresh": refresh,
        "refresh_outputs": [project_pick, *form, inputs_table],
        "status": status,
    }
