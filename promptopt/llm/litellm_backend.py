"""The backend for every hosted or served model, through litellm.

Model names are litellm's: ``gpt-4o-mini``, ``anthropic/claude-3-5-haiku-latest``,
``ollama/llama3.2``, or ``openai/<name>`` with ``api_base=`` for an OpenAI-compatible server
(vLLM, llama.cpp server, LM Studio, ...). Keys come only from the environment (litellm reads
them there itself); this module never reads, logs or stores their values, and it scrubs them
from any error text it passes on.

litellm is imported lazily (it takes seconds), with its telemetry off and its model price list
read from the copy inside the package rather than fetched from the network.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator
from typing import Any

from promptopt.llm.base import (
    Chunk,
    LLMError,
    LLMRequest,
    MissingKeyError,
    TransientLLMError,
    UnknownModelError,
    Usage,
)

log = logging.getLogger("promptopt.llm.litellm")

MODEL_NAMING_HELP = (
    "Name models the way litellm does: gpt-4o-mini (OpenAI), anthropic/claude-3-5-haiku-latest, "
    "gemini/gemini-2.0-flash, ollama/llama3.2 (a local Ollama server), openai/<model> together "
    "with an api_base for any OpenAI-compatible server such as vLLM, or local/smollm2 for the "
    "offline default that needs no key."
)

# The variable to check after an authentication failure, for the providers people use most;
# others fall back to <PROVIDER>_API_KEY, which is litellm's own convention.
_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "cohere": "COHERE_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "azure": "AZURE_API_KEY",
}
# Entries of validate_environment's "missing" list that are addresses, not secrets: litellm
# falls back to a default (Ollama: localhost:11434) or the caller passes api_base.
_ADDRESS_VARIABLE = re.compile(r"(API_BASE|BASE_URL|_URL|ENDPOINT|HOST)$")
_SECRET_VARIABLE = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)

_TRANSIENT_NAMES = (
    "RateLimitError",
    "Timeout",
    "APIConnectionError",
    "ServiceUnavailableError",
    "InternalServerError",
    "BadGatewayError",
)

_import_lock = threading.Lock()
_litellm_module: Any = None


def import_litellm() -> Any:
    """Import litellm once, configured to stay quiet and offline except for the calls we make."""
    global _litellm_module
    with _import_lock:
        if _litellm_module is None:
            # Both must be set before the import: litellm fetches its price list on import.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            os.environ.setdefault("LITELLM_TELEMETRY", "False")
            with warnings.catch_warnings():
                # pydantic warns about litellm's own TypedDicts on import; nothing to act on.
                warnings.simplefilter("ignore", UserWarning)
                import litellm

            litellm.telemetry = False
            litellm.suppress_debug_info = True
            for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
                logging.getLogger(name).setLevel(logging.WARNING)
            _litellm_module = litellm
        return _litellm_module


def redact_secrets(text: str) -> str:
    """Replace the value of every secret-looking environment variable found in ``text``."""
    for name, value in os.environ.items():
        if value and len(value) >= 8 and _SECRET_VARIABLE.search(name) and value in text:
            text = text.replace(value, f"<{name}>")
    return text


def key_variable(provider: str) -> str:
    return _KEY_VARIABLES.get(provider, f"{provider.upper()}_API_KEY")


class LiteLLMBackend:
    """Streams any litellm model. Stateless apart from the lazily imported module, so one
    instance serves every thread."""

    def resolve(self, request: LLMRequest) -> tuple[str, str]:
        """(provider, provider's model name), or UnknownModelError with naming help."""
        litellm = import_litellm()
        try:
            model, provider, _key, _base = litellm.get_llm_provider(
                request.model, api_base=request.api_base
            )
        except Exception as exc:
            raise UnknownModelError(
                f"Unknown model {request.model!r}: litellm cannot tell which provider serves it. "
                + MODEL_NAMING_HELP
            ) from exc
        return str(provider), str(model)

    def check_keys(self, request: LLMRequest, provider: str) -> bool:
        """Raise MissingKeyError when the provider needs a secret that is not set. Returns True
        when a placeholder key must be sent (an OpenAI-compatible server that needs none)."""
        litellm = import_litellm()
        try:
            report = litellm.validate_environment(model=request.model, api_base=request.api_base)
        except Exception as exc:  # never block a call on litellm's own bookkeeping
            log.debug("validate_environment failed for %s: %s", request.model, exc)
            return False
        missing = [v for v in report.get("missing_keys", []) if not _ADDRESS_VARIABLE.search(v)]
        if not missing:
            return False
        if request.api_base and provider in ("openai", "text-completion-openai"):
            # vLLM and most self-hosted OpenAI-compatible servers accept any key; a real one
            # still comes from the environment when set.
            return True
        names = ", ".join(missing)
        raise MissingKeyError(
            f"{request.model} needs {names} in the environment, which is not set. Set it in the "
            f"shell that starts promptopt (for example `export {missing[0]}=...`), or pick a "
            "model that needs no key, such as local/smollm2 (offline) or ollama/<model>. Keys are "
            "read from the environment only and are never stored."
        )

    def stream(self, request: LLMRequest) -> Iterator[Chunk]:
        litellm = import_litellm()
        provider, provider_model = self.resolve(request)
        placeholder_key = self.check_keys(request, provider)
        kwargs = self._call_kwargs(request, provider, provider_model)
        if placeholder_key:
            kwargs["api_key"] = "not-needed"
        parts: list[str] = []
        usage: Any = None
        try:
            response = litellm.completion(**kwargs)
            for chunk in response:
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                choices = getattr(chunk, "choices", None) or []
                delta = getattr(choices[0], "delta", None) if choices else None
                text = getattr(delta, "content", None) if delta is not None else None
                if text:
                    parts.append(text)
                    yield Chunk(text=text)
        except LLMError:
            raise
        except Exception as exc:
            raise self.map_exception(exc, request, provider) from exc
        yield Chunk(usage=self._usage(request, provider, provider_model, usage, "".join(parts)))

    def _call_kwargs(
        self, request: LLMRequest, provider: str, provider_model: str
    ) -> dict[str, Any]:
        litellm = import_litellm()
        params = request.params
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            # litellm leaves out what a provider does not take (a seed for Anthropic, ...).
            "drop_params": True,
            # Retries and the time limit belong to LLMClient, once for every backend.
            "num_retries": 0,
        }
        for name in ("top_p", "seed", "stop"):
            value = getattr(params, name)
            if value is not None:
                kwargs[name] = value
        if request.api_base:
            kwargs["api_base"] = request.api_base
        try:
            supported = litellm.get_supported_openai_params(
                model=provider_model, custom_llm_provider=provider
            )
        except Exception:
            supported = None
        if supported and "stream_options" in supported:
            kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    def _usage(
        self, request: LLMRequest, provider: str, provider_model: str, usage: Any, text: str
    ) -> Usage:
        litellm = import_litellm()
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if prompt is None or completion is None:
            # The provider sent no usage: count with litellm's tokenizer (an estimate for
            # models it does not know, which is better than nothing for the call log).
            try:
                prompt = litellm.token_counter(model=request.model, messages=request.messages)
                completion = litellm.token_counter(model=request.model, text=text)
            except Exception:
                return Usage()
        cost: float | None
        try:
            priced = litellm.ModelResponse(
                model=provider_model,
                usage=litellm.Usage(
                    prompt_tokens=int(prompt),
                    completion_tokens=int(completion),
                    total_tokens=int(prompt) + int(completion),
                ),
            )
            cost = float(
                litellm.completion_cost(
                    completion_response=priced, model=provider_model, custom_llm_provider=provider
                )
            )
        except Exception:  # a model missing from litellm's price list has no known cost
            cost = None
        return Usage(prompt_tokens=int(prompt), completion_tokens=int(completion), cost=cost)

    def map_exception(self, exc: Exception, request: LLMRequest, provider: str) -> LLMError:
        """Turn a litellm (or openai SDK) exception into this package's error types."""
        name = type(exc).__name__
        names = {cls.__name__ for cls in type(exc).__mro__}
        detail = _short(redact_secrets(str(exc)))
        if names & set(_TRANSIENT_NAMES):
            return TransientLLMError(f"{provider} is unavailable or busy ({name}): {detail}")
        if "AuthenticationError" in names or "PermissionDeniedError" in names:
            return LLMError(
                f"{provider} refused the credentials for {request.model}. Check that "
                f"{key_variable(provider)} in the environment holds a valid key with access "
                "to this model."
            )
        if "ContextWindowExceededError" in names:
            return LLMError(
                f"The messages are too long for {request.model}'s context window. Shorten the "
                "input or the prompt, or pick a model with a longer context."
            )
        if "NotFoundError" in names:
            return LLMError(
                f"{provider} does not know the model {request.model!r}: {detail}. Check the "
                "name (and the api_base, for a self-hosted server)."
            )
        if "BadRequestError" in names or "UnsupportedParamsError" in names:
            return LLMError(f"{provider} rejected the request for {request.model}: {detail}")
        return LLMError(f"Calling {request.model} failed ({name}): {detail}")


def _short(text: str, limit: int = 400) -> str:
    # litellm prefixes "litellm.RateLimitError: " and appends debug hints; keep the gist.
    text = re.sub(r"^litellm\.\w+:\s*", "", text.strip())
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
