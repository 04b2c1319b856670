"""Turning a prompt template and an input into messages, and running the project's generator.

Templates hold one ``{input}`` placeholder. Only that placeholder is substituted (no
``str.format``), so braces in the user's text or in JSON examples inside a prompt are safe.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from promptopt.llm import (
    CallContext,
    EmptyOutputError,
    GenerationParams,
    LLMClient,
    Priority,
    StreamingResponse,
)
from promptopt.llm.base import DEFAULT_MAX_TOKENS
from promptopt.llm.client import default_model
from promptopt.llm.resolve import (
    AUTH_ENV_SETTING,
    ResolvedCall,
    connect_url,
    public_url,
    resolve_call,
)

PLACEHOLDER = "{input}"


class TemplateError(ValueError):
    """A prompt template that cannot be used; the message says how to fix it."""


def validate_template(template: str) -> str:
    if not template or not template.strip():
        raise TemplateError("The prompt is empty. Write an instruction containing {input}.")
    if PLACEHOLDER not in template:
        raise TemplateError(
            "The prompt has no {input} placeholder. Add {input} where the input text should go, "
            'for example: "Summarize this article:\\n\\n{input}".'
        )
    return template


def render(template: str, input_text: str) -> str:
    """Substitute the input; a template without the placeholder gets the input appended."""
    if PLACEHOLDER in template:
        return template.replace(PLACEHOLDER, input_text)
    return f"{template.rstrip()}\n\n{input_text}"


def build_messages(
    template: str, input_text: str, *, preference: str | None = None, system: str | None = None
) -> list[dict[str, str]]:
    """The messages for one generation; a learned preference goes into the system message."""
    system_parts = [system] if system else []
    if preference and preference.strip():
        system_parts.append(
            f"Write the response so that it follows this user's preferences: {preference.strip()}"
        )
    messages: list[dict[str, str]] = []
    if system_parts:
        messages.append({"role": "system", "content": "\n\n".join(system_parts)})
    messages.append({"role": "user", "content": render(template, input_text)})
    return messages


@dataclass
class GenerationSettings:
    model: str | None = None
    temperature: float = 0.7
    max_tokens: int = DEFAULT_MAX_TOKENS
    seed: int | None = None
    stop: list[str] | None = None  # the output ends before the first of these
    api_base: str | None = None  # the public address; the credential stays in the environment
    api_base_auth_env: str | None = None

    @classmethod
    def from_project(cls, project: Any) -> GenerationSettings:
        """The project's generator, as ``resolve_call`` decides it."""
        call = resolve_call(project, "generate")
        settings = dict(getattr(project, "settings", {}) or {})
        return cls(
            model=call.model,
            temperature=call.params.temperature,
            max_tokens=call.params.max_tokens,
            seed=call.params.seed,
            stop=call.params.stop,
            api_base=public_url(call.api_base),
            api_base_auth_env=settings.get(AUTH_ENV_SETTING),
        )

    def params(self) -> GenerationParams:
        return GenerationParams(
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
            stop=self.stop or None,
        )

    def resolved(self) -> ResolvedCall:
        """Where these settings send a call (the credential comes from the environment)."""
        return ResolvedCall(
            model=self.model or default_model(),
            api_base=connect_url(self.api_base, self.api_base_auth_env),
            params=self.params(),
        )


def generate(
    client: LLMClient,
    template: str,
    input_text: str,
    settings: GenerationSettings,
    *,
    preference: str | None = None,
    project_id: int | None = None,
    purpose: str = "generate",
    use_cache: bool = True,
    background: bool = False,
) -> StreamingResponse:
    """Stream the project's generator on one input (cached by full request by default).
    ``background``: nobody waits for it on screen, so calls that somebody waits for go first."""
    call = settings.resolved()
    response = client.stream(
        build_messages(template, input_text, preference=preference),
        context=CallContext(purpose=purpose, project_id=project_id, background=background),
        use_cache=use_cache,
        **call.kwargs(),
    )
    return require_text(response, call.model)


def generate_many(
    client: LLMClient,
    jobs: Sequence[tuple[str, str]],
    settings: GenerationSettings,
    *,
    preference: str | None = None,
    project_id: int | None = None,
    purpose: str = "generate",
    use_cache: bool = True,
    background: bool = False,
    priority: Priority | None = None,
) -> list[StreamingResponse]:
    """``generate`` for several (template, input) jobs at once: one response per job, each
    read on its own. The local model decodes them as one batch (two outputs cost little more
    than one); other backends run one call per job. ``priority`` (instead of ``background``)
    lets the caller promote the calls while they run."""
    call = settings.resolved()
    context = CallContext(
        purpose=purpose, project_id=project_id, background=background, priority=priority
    )
    responses = client.stream_many(
        [build_messages(t, i, preference=preference) for t, i in jobs],
        context=context,
        use_cache=use_cache,
        **call.kwargs(),
    )
    return [require_text(r, call.model) for r in responses]


def require_text(response: StreamingResponse, model: str) -> StreamingResponse:
    """The same stream, raising EmptyOutputError at its end when the model wrote nothing but
    whitespace: an empty output is not something a person can judge or edit, so the screen
    shows the error with its Retry instead of a pair. The empty call stays in the call log
    (and is never served from the cache, so Retry asks the model again)."""

    def chunks() -> Iterator[str]:
        wrote = False
        for delta in response:
            wrote = wrote or bool(delta.strip())
            yield delta
        if not wrote:
            response.completion()
            raise EmptyOutputError(
                f"{model} returned an empty answer. Press Retry to ask again; if it keeps "
                "happening, raise max_tokens, reword the prompt, or pick another model."
            )

    return StreamingResponse(chunks(), response.completion, stop=response.stop)
