"""The lean forward and its integer weights: against transformers on a small random Llama
(fast), and on the offline model itself (slow)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import torch

from promptopt.llm.lean import (
    GROUP,
    Head,
    LeanLlama,
    Linear,
    dequantise_int4,
    dequantise_int8,
    quantise_int4,
    quantise_int8,
    supported,
)

needs_int = pytest.mark.skipif(not supported("int4w"), reason="torch lacks the int8/int4 kernels")


def test_int8_rounds_each_weight_within_half_a_step() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(48, 96, generator=gen) * torch.linspace(0.01, 3.0, 48)[:, None]
    q, scale = quantise_int8(w)
    assert q.dtype == torch.int8 and scale.dtype == torch.bfloat16
    assert int(q.abs().max()) <= 127
    error = (dequantise_int8(q, scale) - w).abs()
    # Half a step, plus float32's own rounding of the product.
    assert bool((error <= scale.float()[:, None] * 0.5 + 1e-6).all())
    # The scale is the row's largest weight over 127, up to bf16 rounding: no wasted range.
    assert torch.allclose(scale.float() * 127, w.abs().amax(1), rtol=1e-2)


def test_int4_rounds_within_half_a_step_and_keeps_a_4_bit_grid() -> None:
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(32, 4 * GROUP, generator=gen)
    q, scale, zero = quantise_int4(w)
    assert int(q.min()) >= 0 and int(q.max()) <= 15
    step = scale.float().repeat_interleave(GROUP, dim=1)
    error = (dequantise_int4(q, scale, zero) - w).abs()
    assert bool((error <= step * 0.5 + 1e-5).all())
    # Weights already on a 4-bit grid with bf16 step and offset (a GGUF Q4_1 block: 16
    # levels, lowest and highest used) come back exactly.
    levels = torch.randint(0, 16, (32, 4 * GROUP), generator=gen)
    levels[:, ::GROUP], levels[:, 1::GROUP] = 0, 15
    d = torch.rand(32, 4, generator=gen).to(torch.bfloat16).float() / 8
    low = -8 * d  # so that the kernel's zero (low + 8 * d) is exactly representable
    grid = levels.float() * d.repeat_interleave(GROUP, 1) + low.repeat_interleave(GROUP, 1)
    assert torch.equal(dequantise_int4(*quantise_int4(grid)), grid)


@needs_int
@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_integer_linear_computes_with_its_rounded_weights(kind: str) -> None:
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(64, 96, generator=gen)
    x = torch.randn(3, 96, generator=gen).to(torch.bfloat16)
    layer = Linear(w, kind)
    if kind == "int8":
        rounded = dequantise_int8(*quantise_int8(w))
    else:
        rounded = dequantise_int4(*quantise_int4(w))
    expected = x.float() @ rounded.T
    got = layer(x).float()
    assert got.shape == (3, 64)
    assert torch.allclose(got, expected, atol=0.15, rtol=0.02)
    # One row alone computes exactly what it computes among others.
    assert torch.equal(layer(x[1:2]), layer(x)[1:2])


@needs_int
def test_the_head_gives_its_int8_weights_logits_to_float_precision_row_by_row() -> None:
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(96, 64, generator=gen) * 0.05
    x = (torch.randn(3, 64, generator=gen) * torch.linspace(0.1, 8.0, 64)).to(torch.bfloat16)
    x[2] = 0  # a row of zeros: no scale to divide by
    head = Head(w)
    got = head(x)
    assert got.dtype == torch.float32 and got.shape == (3, 96)
    exact = x.float() @ dequantise_int8(*quantise_int8(w)).T
    # The activations are split in two int8 parts, within 1/508 of the row's largest: far
    # finer than the bf16 they come in, so the logits are the int8 weights' to ~1e-4.
    assert (got - exact).abs().max() <= 2e-4 * exact.abs().max()
    assert bool((got[2] == 0).all())
    # Integer sums are exact: one row alone computes exactly what it computes among others.
    for row in range(3):
        assert torch.equal(head(x[row : row + 1])[0], got[row])


def _tiny_llama() -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(3)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    )
    return LlamaForCausalLM(config).eval()


def _hf_logits(model: Any, prompts: list[list[int]], more: int) -> list[torch.Tensor]:
    """transformers' last-position logits, left-padded batch: prefill, then ``more`` greedy
    steps. One [batch, vocab] tensor per step."""
    from transformers.cache_utils import DynamicCache

    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    # transformers 5.x renames the cache argument; older versions know only the second.
    arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out: list[torch.Tensor] = []
    with torch.inference_mode():
        for _ in range(more + 1):
            logits = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **{arg: cache},
            ).logits[:, -1, :]
            out.append(logits.float())
            ids = logits.argmax(-1, keepdim=True)
            mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=1)
            positions = positions[:, -1:] + 1
    return out


def _left_padded(
    prompts: list[list[int]],
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(ids, positions, starts) of ``prompts`` left-padded to one length, as the decoder does."""
    width = max(len(p) for p in prompts)
    starts = [width - len(p) for p in prompts]
    ids = torch.tensor([[0] * s + p for s, p in zip(starts, prompts, strict=True)])
    positions = torch.tensor([[max(0, i - s) for i in range(width)] for s in starts])
    return ids, positions, starts


def _lean_logits(
    lean: LeanLlama, prompts: list[list[int]], more: int, capacity: int = 64
) -> list[torch.Tensor]:
    ids, positions, starts = _left_padded(prompts)
    cache = lean.new_cache(capacity, starts)
    out: list[torch.Tensor] = []
    with torch.inference_mode():
        for _ in range(more + 1):
            logits = lean.forward(ids, positions, cache)
            out.append(logits)
            ids = logits.argmax(-1, keepdim=True)
            positions = positions[:, -1:] + 1
    return out


PROMPTS = [[5, 17, 99, 3, 42, 8, 77], [12, 4], [100, 101, 102, 103]]


def test_lean_forward_gives_transformers_logits_batched_and_alone() -> None:
    model = _tiny_llama()
    lean = LeanLlama(model, "fp32")
    # capacity 4: the cache grows several times on the way.
    for got, want in zip(
        _lean_logits(lean, PROMPTS, 5, capacity=4), _hf_logits(model, PROMPTS, 5), strict=True
    ):
        assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    for prompt in PROMPTS:
        alone = _lean_logits(lean, [prompt], 5)
        for got, want in zip(alone, _hf_logits(model, [prompt], 5), strict=True):
            assert torch.allclose(got, want, atol=1e-4)


@needs_int
@pytest.mark.parametrize("weights", ["int8w", "int4w"])
def test_integer_weights_give_each_row_the_same_logits_alone_and_in_a_batch(weights: str) -> None:
    model = _tiny_llama()
    lean = LeanLlama(model, weights)
    batched = _lean_logits(lean, PROMPTS, 4)
    for row, prompt in enumerate(PROMPTS):
        for step, alone in enumerate(_lean_logits(lean, [prompt], 4)):
            assert torch.equal(alone[0], batched[step][row])
    # Close to the float model (the tiny model's weights are not on a 4-bit grid).
    reference = _hf_logits(model, PROMPTS, 0)[0]
    assert torch.allclose(batched[0], reference, atol=0.1)


@pytest.mark.parametrize("weights", ["fp32", pytest.param("int4w", marks=needs_int)])
def test_prompts_read_on_several_threads_give_what_they_give_one_after_another(
    weights: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean = LeanLlama(_tiny_llama(), weights)
    ids, positions, starts = _left_padded(PROMPTS)
    # As the app reads prompts: one thread. A new thread does not inherit it by itself (its
    # products then split differently and round differently).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _compare_prompt_workers(lean, ids, positions, starts, monkeypatch)
    finally:
        torch.set_num_threads(before)


def _compare_prompt_workers(
    lean: LeanLlama,
    ids: torch.Tensor,
    positions: torch.Tensor,
    starts: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = []
    for workers in (1, 3):
        cache = lean.new_cache(16, starts)
        with torch.inference_mode():
            first = lean.forward(ids, positions, cache, workers=workers)
            then = lean.forward(first.argmax(-1, keepdim=True), positions[:, -1:] + 1, cache)
        results.append((first, then, cache))
    # At interpreter exit no thread can start: the rows that got none are read by the caller.
    from concurrent.futures import ThreadPoolExecutor

    submit = ThreadPoolExecutor.submit
    calls = iter(range(100))

    def refuse_after_first(pool: Any, *args: Any) -> Any:
        if next(calls):
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        return submit(pool, *args)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", refuse_after_first)
    cache = lean.new_cache(16, starts)
    with torch.inference_mode():
        first = lean.forward(ids, positions, cache, workers=3)
        then = lean.forward(first.argmax(-1, keepdim=True), positions[:, -1:] + 1, cache)
    results.append((first, then, cache))
    (first, then, cache), *others = results
    for first_n, then_n, cache_n in others:
        assert torch.equal(first, first_n) and torch.equal(then, then_n)
        for layer in range(len(cache.k)):
            assert torch.equal(cache.k[layer], cache_n.k[layer])
            assert torch.equal(cache.v[layer], cache_n.v[layer])


def test_rows_leave_the_cache_and_the_others_go_on_unchanged() -> None:
    lean = LeanLlama(_tiny_llama(), "fp32")
    prompts = PROMPTS
    ids, positions, starts = _left_padded(prompts)
    cache = lean.new_cache(16, starts)
    with torch.inference_mode():
        lean.forward(ids, positions, cache)
        cache.keep(torch.tensor([2, 0]))  # row 1 ended; the order may change too
        assert cache.starts == [starts[2], starts[0]]
        nxt = torch.tensor([[7], [9]])
        got = lean.forward(nxt, positions[[2, 0], -1:] + 1, cache)
    for row, (prompt, token) in enumerate(((prompts[2], 7), (prompts[0], 9))):
        alone = lean.new_cache(16, [0])
        with torch.inference_mode():
            lean.forward(torch.tensor([prompt]), torch.arange(len(prompt))[None], alone)
            want = lean.forward(torch.tensor([[token]]), torch.tensor([[len(prompt)]]), alone)
        assert torch.allclose(got[row], want[0], atol=1e-5)


def test_unknown_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="weights must be one of"):
        LeanLlama(_tiny_llama(), "int3")


# -- slow: the offline model ------------------------------------------------------------------


def _offline(weights: str) -> Any:
    from promptopt.llm.local import LocalBackend

    backend = LocalBackend(shared=False, weights=weights)
    backend.load()
    return backend


@pytest.mark.slow
def test_lean_forward_matches_transformers_on_the_offline_model() -> None:
    loaded = _offline("fp32")._ensure_loaded()
    chats = ["Name one fruit.", "Write one short sentence about the sea, with two details."]
    prompts: list[list[int]] = []
    for chat in chats:
        encoded = loaded.tokenizer.apply_chat_template([{"role": "user", "content": chat}])
        prompts.append(list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded))
    lean = LeanLlama(loaded.model, "fp32")
    batched = _lean_logits(lean, prompts, 3, capacity=128)
    for got, want in zip(batched, _hf_logits(loaded.model, prompts, 3), strict=True):
        assert torch.allclose(got, want, atol=2e-3), (got - want).abs().max()
    alone = _lean_logits(lean, prompts[:1], 3, capacity=128)
    for got, want in zip(alone, _hf_logits(loaded.model, prompts[:1], 3), strict=True):
        assert torch.allclose(got, want, atol=2e-3)


@pytest.mark.slow
@needs_int
@pytest.mark.parametrize("weights", ["int4w", "int8w"])
def test_integer_weights_keep_outputs_sensible_and_independent_of_the_batch(weights: str) -> None:
    from promptopt.llm import GenerationParams, LLMClient

    client = LLMClient(store=None, timeout_s=600.0, max_retries=0)
    backend = _offline(weights)
    assert backend._ensure_loaded().lean is not None
    client.register("local", backend)
    greedy = GenerationParams(temperature=0, max_tokens=24)
    note = (
        "The old lighthouse on the northern cape was switched off in 1987, when satellite "
        "navigation made it unnecessary. Volunteers repaired it and opened a museum."
    )
    chats = [
        [{"role": "user", "content": f"Summarise in one sentence: {note}"}],
        [{"role": "user", "content": "Give three tips for writing clear emails."}],
    ]
    alone = [client.complete(c, model="local/smollm2", params=greedy).text for c in chats]
    together = [r.text() for r in client.stream_many(chats, model="local/smollm2", params=greedy)]
    assert together == alone
    # What fp32 writes too (measured): the summary opens with the note's own words.
    assert alone[0].startswith("The old lighthouse on the northern cape was switched off")
    assert alone[1].lstrip().startswith("1.")


SHUTDOWN_SCRIPT = textwrap.dedent(
    """
    import threading
    from promptopt.llm import GenerationParams, LLMClient
    from promptopt.llm.local import LocalBackend

    client = LLMClient(store=None, timeout_s=600.0, max_retries=0)
    backend = LocalBackend(shared=False)
    backend.load()
    client.register("local", backend)
    chat = [{"role": "user", "content": "Write a long essay about the history of Rome."}]
    params = GenerationParams(temperature=0, max_tokens=2000)
    started = threading.Event()

    def work():
        for _ in client.stream(chat, model="local/smollm2", params=params):
            started.set()

    threading.Thread(target=work, daemon=True).start()
    started.wait(120)
    print("exiting while decoding", flush=True)
    """
)


@pytest.mark.slow
def test_the_process_exits_cleanly_while_a_daemon_thread_decodes() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SHUTDOWN_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert "exiting while decoding" in done.stdout
    assert "terminate called" not in done.stderr
    assert done.returncode == 0, done.stderr[-2000:]
