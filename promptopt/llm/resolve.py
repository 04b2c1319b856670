"""The one place that decides where an LLM call goes: model, server address and parameters.

Every call the engines make (generate, compare.propose, infer, condense, verify, ...) is built
from ``resolve_call(project, purpose)``, so that no purpose can drift to another server: a
project that names a self-hosted ``api_base`` gets it for its meta calls too, not only for
generation. ``tests/test_resolve.py`` fails when a call in ``promptopt/`` bypasses it.

Credentials never live in the project: ``api_base`` is stored without ``user:password@`` (and
without a query string, where some gateways take ``?api_key=``). The credential is read from
the environment when the call is made: ``PROMPTOPT_API_BASE_AUTH`` (``user:password``) or the
variable named by the project's ``api_base_auth_env`` setting.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from promptopt.llm.base import DEFAULT_MAX_TOKENS, GenerationParams, LLMError
from promptopt.llm.client import default_model
from promptopt.llm.secrets import has_credentials, public_url, redact, secrets_of

__all__ = [
    "AUTH_ENV",
    "ResolvedCall",
    "connect_url",
    "has_credentials",
    "public_url",
    "redact",
    "resolve_call",
    "secrets_of",
]

AUTH_ENV = "PROMPTOPT_API_BASE_AUTH"
AUTH_ENV_SETTING = "api_base_auth_env"

# Generation writes the outputs people judge; every other purpose is the optimiser talking to
# itself (proposals, preference inference, condensing, verification).
GENERATE_PURPOSES = frozenset({"generate", "compare"})

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ResolvedCall:
    """Where one call goes. ``api_base`` may carry a credential from the environment: pass it
    to the client and never store or show it (``public_api_base`` is the printable form)."""

    model: str
    api_base: str | None
    params: GenerationParams

    def with_params(self, params: GenerationParams) -> ResolvedCall:
        return replace(self, params=params)

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``LLMClient.stream/complete/stream_many``."""
        return {"model": self.model, "api_base": self.api_base, "params": self.params}

    @property
    def public_api_base(self) -> str | None:
        return public_url(self.api_base)


def resolve_call(
    project: Any,
    purpose: str,
    *,
    params: GenerationParams | None = None,
    model: str | None = None,
) -> ResolvedCall:
    """The model, server and parameters for one ``purpose`` of ``project``.

    ``model`` overrides the project's choice for meta calls (an engine configured with its own
    meta model); it still goes to the project's server. ``params`` defaults to the project's
    generation settings."""
    settings = dict(getattr(project, "settings", None) or {})
    generator = getattr(project, "generator_model", None) or None
    if purpose in GENERATE_PURPOSES:
        chosen = model or generator or default_model()
    else:
        chosen = model or getattr(project, "optimizer_model", None) or generator
        chosen = chosen or default_model()
    if params is None:
        params = GenerationParams(
            temperature=float(settings.get("temperature", 0.7)),
            max_tokens=int(settings.get("max_tokens", DEFAULT_MAX_TOKENS)),
            seed=settings.get("seed"),
            stop=stop_sequences(settings.get("stop")),
        )
    api_base = connect_url(settings.get("api_base"), settings.get(AUTH_ENV_SETTING))
    return ResolvedCall(model=chosen, api_base=api_base, params=params)


def stop_sequences(value: Any) -> list[str] | None:
    """A project's ``stop`` setting: one string or a list of them; empty ones are dropped."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    stops = [str(item) for item in items if str(item)]
    return stops or None


def connect_url(api_base: str | None, auth_env: str | None = None) -> str | None:
    """The address to connect to: the public address plus the credential from the environment,
    when one is set. A credential left in an address stored before they were refused is
    dropped, so that there is one way to give one (and the log shows what connects)."""
    api_base = public_url(api_base)
    if not api_base:
        return None
    name = (auth_env or "").strip() or AUTH_ENV
    if not _ENV_NAME.match(name):
        raise LLMError(
            f"The project's {AUTH_ENV_SETTING} setting must name an environment variable "
            "(letters, digits and _). Fix it in the Project tab."
        )
    auth = os.environ.get(name, "")
    if not auth:
        return api_base
    user, _, password = auth.partition(":")
    parts = urlsplit(api_base)
    userinfo = quote(unquote(user), safe="")
    if password:
        userinfo += ":" + quote(unquote(password), safe="")
    return urlunsplit((parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, parts.query, ""))
