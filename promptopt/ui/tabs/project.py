"""Project tab: create, open, rename and delete projects; the task, the base prompt and the models;
inputs typed, pasted or imported from CSV, JSONL or TXT (with a preview and the bad rows)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from promptopt.ui.context import MODEL_CHOICES, AppContext, user_message
from promptopt.ui.formatting import escape_md, shorten
from promptopt.ui.state import SessionState
from promptopt.wording import plural
from promptopt.workspace import Project, ProjectForm, Workspace

INPUT_HEADERS = ["id", "input", "source"]
SPLIT_LINES = "one input per line"
SPLIT_BLANK = "inputs separated by a blank line"

log = logging.getLogger("promptopt.ui")


def project_choices(ws: Workspace) -> list[tuple[str, int]]:
    return [(p.name, p.id) for p in ws.projects()]


def banner(ctx: AppContext, state: SessionState) -> str:
    who = f"annotator **{escape_md(state.annotator)}**"
    if state.project_id is None:
        return f"**No project open.** Open a sample or create a project · {who}"
    try:
        project = ctx.workspace.project(state.project_id)
    except Exception:
        return f"**No project open.** · {who}"
    n_inputs = len(ctx.workspace.inputs(project.id))
    return f"**Project:** {escape_md(project.name)} · {n_inputs} inputs · {who}"


def split_typed(text: str, mode: str) -> list[str]:
    if mode == SPLIT_BLANK:
        blocks = [b.strip() for b in text.replace("\r\n", "\n").split("\n\n")]
        return [b for b in blocks if b]
    return [line.strip() for line in text.splitlines() if line.strip()]


def form_of(nm: str, tk: str, tpl: str, gen: str, opt: str, api: str) -> ProjectForm:
    def model(value: str | None) -> str | None:
        return (value or "").strip() or None

    return ProjectForm(nm, tk, tpl, model(gen), model(opt), (api or "").strip() or None)


@dataclass
class ProjectPage:
    project_pick: gr.Dropdown
    open_btn: gr.Button
    sample_btns: dict[str, gr.Button]
    status: gr.Markdown
    name: gr.Textbox
    task: gr.Textbox
    template: gr.Textbox
    generator: gr.Dropdown
    optimizer: gr.Dropdown
    api_base: gr.Textbox
    create_btn: gr.Button
    save_btn: gr.Button
    delete_btn: gr.Button
    confirm_row: gr.Row
    confirm_text: gr.Markdown
    confirm_btn: gr.Button
    cancel_btn: gr.Button
    typed: gr.Textbox
    split: gr.Radio
    add_btn: gr.Button
    upload: gr.File
    column: gr.Dropdown
    problems: gr.Markdown
    import_btn: gr.Button
    preview: gr.Dataframe
    inputs_table: gr.Dataframe

    @property
    def form(self) -> list[Any]:
        return [self.name, self.task, self.template, self.generator, self.optimizer, self.api_base]


def _settings_layout(default_model: str) -> dict[str, Any]:
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
    return dict(
        name=name, task=task, template=template, generator=generator, optimizer=optimizer,
        api_base=api_base,
    )  # fmt: skip


def _inputs_layout() -> dict[str, Any]:
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
        headers=INPUT_HEADERS,
        value=[],
        label="Inputs of this project",
        interactive=False,
        wrap=True,
        column_widths=["6%", "80%", "14%"],
        elem_id="project-inputs",
    )
    return dict(
        typed=typed, split=split, add_btn=add_btn, upload=upload, column=column,
        problems=problems, import_btn=import_btn, preview=preview, inputs_table=inputs_table,
    )  # fmt: skip


def layout(ws: Workspace) -> ProjectPage:
    with gr.Row(equal_height=True):
        project_pick = gr.Dropdown(
            label="Projects", choices=project_choices(ws), value=None, scale=4
        )
        open_btn = gr.Button("Open", variant="primary", scale=1, elem_id="project-open")
    samples = ws.samples()
    sample_btns: dict[str, gr.Button] = {}
    if samples:
        gr.Markdown("**Sample projects** (one click):")
        with gr.Row():
            for key, desc in samples.items():
                sample_btns[key] = gr.Button(
                    f"Open sample: {desc.split(':', 1)[0]}", size="sm", elem_id=f"sample-{key}"
                )
    status = gr.Markdown("", elem_id="project-status")
    settings = _settings_layout(ws.default_model())
    with gr.Row():
        create_btn = gr.Button("Create new project", variant="primary", elem_id="project-create")
        save_btn = gr.Button("Save changes (rename, task, prompt, models)")
        delete_btn = gr.Button("Delete project…", variant="stop")
    with gr.Row(visible=False) as confirm_row:
        confirm_text = gr.Markdown("")
        confirm_btn = gr.Button("Yes, delete it", variant="stop", elem_id="project-delete-confirm")
        cancel_btn = gr.Button("Cancel")
    inputs = _inputs_layout()
    return ProjectPage(
        project_pick=project_pick, open_btn=open_btn, sample_btns=sample_btns, status=status,
        create_btn=create_btn, save_btn=save_btn, delete_btn=delete_btn, confirm_row=confirm_row,
        confirm_text=confirm_text, confirm_btn=confirm_btn, cancel_btn=cancel_btn,
        **settings, **inputs,
    )  # fmt: skip


class Handlers:
    def __init__(
        self, ctx: AppContext, state: gr.State, header: gr.Markdown, page: ProjectPage
    ) -> None:
        self.ctx, self.state, self.header, self.page = ctx, state, header, page
        self.ws = ctx.workspace
        self.default_model = self.ws.default_model()

    @property
    def outputs(self) -> list[Any]:
        p = self.page
        return [
            self.state, p.status, self.header, p.project_pick, p.confirm_row, *p.form,
            p.inputs_table,
        ]  # fmt: skip

    def inputs_rows(self, project_id: int) -> list[list[Any]]:
        return [[i.id, shorten(i.text, 200), i.source or ""] for i in self.ws.inputs(project_id)]

    def fields(self, project: Project | None) -> dict[Any, Any]:
        p = self.page
        if project is None:
            return {
                p.name: "", p.task: "", p.template: "", p.generator: self.default_model,
                p.optimizer: self.default_model, p.api_base: "", p.inputs_table: [],
            }  # fmt: skip
        return {
            p.name: project.name,
            p.task: project.task,
            p.template: project.template,
            p.generator: project.generator_model or self.default_model,
            p.optimizer: project.optimizer_model or self.default_model,
            p.api_base: (project.settings or {}).get("api_base") or "",
            p.inputs_table: self.inputs_rows(project.id),
        }

    def opened(self, st: SessionState, project: Project, message: str) -> dict[Any, Any]:
        p = self.page
        if st.project_id != project.id:
            st.reset_work()
            self.ws.forget_pairs(st.session_id)
        st.project_id = project.id
        # The Compare tab says why when this fails; the project itself is fine.
        with contextlib.suppress(Exception):
            self.ws.ensure_pool(project.id)
        self.head_start(st)
        return {
            self.state: st,
            p.status: message,
            self.header: banner(self.ctx, st),
            p.project_pick: gr.update(choices=project_choices(self.ws), value=project.id),
            p.confirm_row: gr.update(visible=False),
            **self.fields(project),
        }

    def head_start(self, st: SessionState) -> None:
        """Start the project's first pair now, so that it is (nearly) written when Compare opens;
        a pair already on screen needs none."""
        if st.project_id is None or st.duel is not None:
            return
        try:
            self.ws.prepare_first_pair(st.session_id, st.project_id, st.annotator)
        except Exception:  # only the head start is lost; Compare starts the pair itself
            log.warning("preparing the first pair of %s failed", st.project_id, exc_info=True)

    def open(self, st: SessionState, project_id: int | None) -> dict[Any, Any]:
        if project_id is None:
            return {self.page.status: "Pick a project in the list first, or open a sample."}
        try:
            project = self.ws.project(int(project_id))
        except Exception as exc:
            return {self.page.status: user_message(exc)}
        return self.opened(st, project, f"Opened **{escape_md(project.name)}**.")

    def sample(self, key: str) -> Callable[[SessionState], dict[Any, Any]]:
        def handler(st: SessionState) -> dict[Any, Any]:
            try:
                project = self.ws.open_sample(key)
            except Exception as exc:
                return {self.page.status: user_message(exc)}
            return self.opened(st, project, f"Opened the sample **{escape_md(project.name)}**.")

        return handler

    def create(
        self, st: SessionState, nm: str, tk: str, tpl: str, gen: str, opt: str, api: str
    ) -> dict[Any, Any]:
        try:
            project = self.ws.create_project(form_of(nm, tk, tpl, gen, opt, api))
        except Exception as exc:  # the form keeps everything the user typed
            return {self.page.status: user_message(exc)}
        return self.opened(st, project, f"Created **{escape_md(project.name)}**. Now add inputs.")

    def save(
        self, st: SessionState, nm: str, tk: str, tpl: str, gen: str, opt: str, api: str
    ) -> dict[Any, Any]:
        try:
            project, pool_changed = self.ws.save_project(
                self.ws.project(st.project_id).id, form_of(nm, tk, tpl, gen, opt, api)
            )
        except Exception as exc:
            return {self.page.status: user_message(exc)}
        if pool_changed:
            self.ws.forget_pairs(st.session_id)
        return self.opened(st, project, "Saved.")

    def ask_delete(self, st: SessionState) -> dict[Any, Any]:
        p = self.page
        try:
            project, votes, edits = self.ws.deletion_summary(self.ws.project(st.project_id).id)
        except Exception as exc:
            return {p.status: user_message(exc)}
        return {
            p.confirm_row: gr.update(visible=True),
            p.confirm_text: (
                f"Delete **{escape_md(project.name)}** with its {votes} votes and {edits} edits? "
                "This cannot be undone."
            ),
        }

    def confirm_delete(self, st: SessionState) -> dict[Any, Any]:
        p = self.page
        try:
            project = self.ws.delete_project(self.ws.project(st.project_id).id)
        except Exception as exc:
            return {p.status: user_message(exc), p.confirm_row: gr.update(visible=False)}
        st.project_id = None
        st.reset_work()
        self.ws.forget_pairs(st.session_id)
        return {
            self.state: st,
            p.status: f"Deleted **{escape_md(project.name)}**.",
            self.header: banner(self.ctx, st),
            p.project_pick: gr.update(choices=project_choices(self.ws), value=None),
            p.confirm_row: gr.update(visible=False),
            **self.fields(None),
        }

    def refresh(self, st: SessionState) -> dict[Any, Any]:
        project = None
        if st.project_id is not None:
            try:
                project = self.ws.project(st.project_id)
            except Exception:
                project = None
        return {
            self.page.project_pick: gr.update(
                choices=project_choices(self.ws), value=project.id if project else None
            ),
            **self.fields(project),
        }


class InputHandlers:
    def __init__(self, projects: Handlers) -> None:
        self.projects = projects
        self.ws, self.page, self.header = projects.ws, projects.page, projects.header

    def add(self, st: SessionState, text: str, mode: str) -> dict[Any, Any]:
        p = self.page
        try:
            project = self.ws.project(st.project_id)
            added = self.ws.add_inputs(project.id, split_typed(text or "", mode), source="typed")
        except Exception as exc:
            return {p.status: user_message(exc)}
        self.projects.head_start(st)  # a project with its first inputs can be compared now
        return {
            p.status: f"Added {plural(len(added.ids), 'input')}."
            + already_there(len(added.duplicates)),
            p.typed: "",
            self.header: banner(self.projects.ctx, st),
            p.inputs_table: self.projects.inputs_rows(project.id),
        }

    def upload(self, path: str | None, col: str | None = None) -> dict[Any, Any]:
        p = self.page
        if not path:
            return {
                p.column: gr.update(visible=False, choices=[], value=None),
                p.preview: gr.update(visible=False, value=[]),
                p.problems: "",
                p.import_btn: gr.update(interactive=False),
            }
        try:
            result, fmt = self.ws.parse_inputs(path, col)
        except Exception as exc:  # any file gets a message, never a traceback
            return {
                p.column: gr.update(visible=False, choices=[], value=None),
                p.preview: gr.update(visible=False, value=[]),
                p.problems: user_message(exc),
                p.import_btn: gr.update(interactive=False),
            }
        lines = [f"**{result.count} inputs** read from this {fmt.upper()} file."]
        if result.problem_count:
            lines.append(f"{result.problem_count} rows with problems (listed by line):")
            lines += [f"- {escape_md(q)}" for q in result.problems[:20]]
            if result.problem_count > 20:
                lines.append(f"- … and {result.problem_count - 20} more")
        return {
            p.column: gr.update(
                visible=bool(result.columns), choices=result.columns, value=result.column
            ),
            p.preview: gr.update(
                visible=True, value=[[shorten(t, 200)] for t in result.texts[:10]]
            ),
            p.problems: "\n".join(lines),
            p.import_btn: gr.update(interactive=bool(result.count)),
        }

    def import_file(
        self,
        st: SessionState,
        path: str | None,
        col: str | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> dict[Any, Any]:
        p = self.page
        try:
            project = self.ws.project(st.project_id)
            if not path:
                return {p.status: "Upload a file with at least one good row first."}
            source = Path(path).name
            done = self.ws.import_file(
                project.id,
                path,
                col,
                source,
                progress=lambda frac, desc: progress(frac, desc=desc),
            )
        except Exception as exc:
            return {p.status: user_message(exc)}
        self.projects.head_start(st)
        bad = done.report.problem_count
        skipped = f" ({plural(bad, 'bad row')} skipped)" if bad else ""
        return {
            p.status: f"Imported {plural(done.added, 'input')} from {escape_md(source)}{skipped}."
            + already_there(done.already_there),
            self.header: banner(self.projects.ctx, st),
            p.inputs_table: self.projects.inputs_rows(project.id),
        }


def already_there(count: int) -> str:
    if not count:
        return ""
    return f" Left out {plural(count, 'input')} the project already has."


def wire(h: Handlers) -> None:
    p, state, outputs = h.page, h.state, h.outputs
    p.open_btn.click(h.open, [state, p.project_pick], outputs, api_name="open_project")
    for key, btn in p.sample_btns.items():
        btn.click(h.sample(key), [state], outputs, api_name=f"open_sample_{key.replace('-', '_')}")
    p.create_btn.click(h.create, [state, *p.form], outputs, api_name="create_project")
    p.save_btn.click(h.save, [state, *p.form], outputs, api_name="save_project")
    p.delete_btn.click(h.ask_delete, [state], [p.confirm_row, p.confirm_text, p.status])
    p.confirm_btn.click(h.confirm_delete, [state], outputs, api_name="delete_project")
    p.cancel_btn.click(lambda: gr.update(visible=False), None, p.confirm_row)
    i = InputHandlers(h)
    p.add_btn.click(
        i.add, [state, p.typed, p.split], [p.status, p.typed, h.header, p.inputs_table],
        api_name="add_inputs",
    )  # fmt: skip
    upload_outputs = [p.column, p.preview, p.problems, p.import_btn]
    p.upload.change(lambda path: i.upload(path, None), [p.upload], upload_outputs)
    p.column.input(i.upload, [p.upload, p.column], upload_outputs)
    p.import_btn.click(
        i.import_file, [state, p.upload, p.column], [p.status, h.header, p.inputs_table],
        api_name="import_inputs",
    )  # fmt: skip


def build(ctx: AppContext, state: gr.State, header: gr.Markdown) -> dict[str, Any]:
    """Build the tab inside the current ``gr.Tab`` and wire its events."""
    page = layout(ctx.workspace)
    handlers = Handlers(ctx, state, header, page)
    wire(handlers)
    return {
        "refresh": handlers.refresh,
        "refresh_outputs": [page.project_pick, *page.form, page.inputs_table],
        "status": page.status,
    }
