"""A lean decoding forward for the offline model (the Llama architecture), on its own weights.

Why not transformers' forward: at one token per step, a 135M model on one CPU core spends about a
third of each step in Python and module overhead (hooks, cache objects, mask building), not in
reading weights. This forward does the same arithmetic with a fraction of the calls: the query,
key and value projections are one matrix, so are the gate and up projections, the key/value
cache is preallocated, and only the last position's logits are computed.

Weights (``LeanLlama(model, weights)``):
- ``fp32`` / ``bf16``: the model's own weights, cast; ``fp32`` reproduces transformers' logits
  (tested: allclose), which is what proves the architecture here right;
- ``int8w``: weight-only int8, one symmetric scale per output channel, with bfloat16 activations
  (``torch._weight_int8pack_mm``). Only the weights are rounded, never the activations, so a
  sequence's output does not depend on the others in its batch (unlike torch's dynamic int8).
  The tied embedding stays as it is for the lookup; its copy for the output head is quantised
  (``Head``: int8 too, computed by one integer product for every row of a step, to float32
  precision). Reads a quarter of fp32's bytes per token.
- ``int4w``: the layers on GGUF's own 4-bit grid (``torch._weight_int4pack_mm_for_cpu``), the
  head as in ``int8w``.

Two paths. A decoding step (one new token per row, every row at once) is memory-bound: it uses
the integer kernels, which read a fraction of the bytes. A prompt (hundreds of positions) is
compute-bound, where those kernels are 2-3x slower than a bf16 matrix product: it goes row by
row, on the row's own tokens only, through ``Linear.many`` (the same rounded weights,
dequantised to bf16 once at load, ~150 MB more at peak for int4w), with attention in fp32. A
470-token prompt on one thread: 0.44 s, against 1.6 s through the integer kernels with float64
attention. Row by row also keeps a row's arithmetic the same alone and in a batch, and lets the
rows' prompts run on several threads at once (``forward``'s ``workers``).

The key/value cache supports what batched decoding needs: left padding (a key mask per row),
rows leaving the batch (``KVCache.keep``) and growing past its first size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LEAN_WEIGHTS = ("fp32", "bf16", "int8w", "int4w")
GROUP = 32  # int4w: weights per scale and zero, along the input dimension (GGUF's block)


def _probe(kind: str) -> bool:
    import torch

    x = torch.ones(1, 64, dtype=torch.bfloat16)
    if kind == "int8":
        w = torch.ones(8, 64, dtype=torch.int8)
        out = torch._weight_int8pack_mm(x, w, torch.ones(8, dtype=torch.bfloat16))
    elif kind == "intmm":  # the head's integer product (``Head``)
        ones = torch.ones(2, 64, dtype=torch.int8)
        out = torch._int_mm(ones, torch.ones(64, 8, dtype=torch.int8)).float()
    else:
        q = torch.full((16, 64), 9, dtype=torch.int32)  # (9 - 8) * 1 + 0 = 1 each
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        zeros = torch.zeros(64 // GROUP, 16, 2, dtype=torch.bfloat16)
        zeros[..., 0] = 1.0
        out = torch._weight_int4pack_mm_for_cpu(x, packed, GROUP, zeros)
    return bool(out.shape[-1] in (8, 16) and float(out[0, 0]) == 64.0)


def supported(weights: str) -> bool:
    """Whether this torch has (and runs) the CPU kernels that ``weights`` needs."""
    if weights in ("fp32", "bf16"):
        return True
    try:
        return _probe("int8") and _probe("intmm") and (weights == "int8w" or _probe("int4"))
    except Exception:  # an old or partial build: the caller falls back to other weights
        return False


def quantise_int8(weight: Any) -> tuple[Any, Any]:
    """(int8 weight, bf16 scale per output row): ``weight ≈ q * scale[:, None]``, each element
    within half a step (``scale / 2``) of the original."""
    import torch

    w = weight.detach().float()
    amax = w.abs().amax(dim=1).clamp(min=1e-12)
    # The kernel takes bf16 scales; rounding the scale after choosing the integers would scale
    # a whole row wrongly (up to 0.4 %), so the integers are chosen for the rounded scale.
    scale = (amax / 127.0).to(torch.bfloat16)
    low = scale.float() * 127.0 < amax
    if bool(low.any()):  # rounded down: the row's largest weight would not fit in ±127
        scale = torch.where(low, torch.nextafter(scale, torch.full_like(scale, 1.0)), scale)
    q = torch.round(w / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def dequantise_int8(q: Any, scale: Any) -> Any:
    return q.float() * scale.float()[:, None]


def quantise_int4(weight: Any) -> tuple[Any, Any, Any]:
    """(integers 0..15 ``[out, in]``, bf16 scales and zeros ``[out, in / GROUP]`` each):
    ``weight ≈ (q - 8) * scale + zero`` per group of ``GROUP`` inputs, as torch's int4 kernel
    computes. Each group's range is cut in 15 steps; for a GGUF Q4_1 tensor (16 levels per
    block of 32, lowest and highest used) that is its own grid, so only the bf16 rounding of
    scale and zero differs from the file."""
    import torch

    w = weight.detach().float()
    out, inner = w.shape
    groups = w.reshape(out, inner // GROUP, GROUP)
    low, high = groups.amin(-1), groups.amax(-1)
    scale = ((high - low) / 15).clamp(min=1e-12).to(torch.bfloat16)
    zero = (low + 8 * scale.float()).to(torch.bfloat16)
    # Integers chosen for the rounded scale and zero, which are what the kernel uses.
    q = torch.round((groups - zero.float()[..., None]) / scale.float()[..., None] + 8)
    return q.clamp(0, 15).reshape(out, inner).to(torch.int32), scale, zero


def dequantise_int4(q: Any, scale: Any, zero: Any) -> Any:
    out, inner = q.shape
    groups = (q.float().reshape(out, inner // GROUP, GROUP) - 8) * scale.float()[..., None]
    return (groups + zero.float()[..., None]).reshape(out, inner)


class Linear:
    """``x @ weight.T`` for weights of kind ``fp32``, ``bf16``, ``int8`` or ``int4``.

    Two paths: ``__call__`` for a decoding step (a few rows: memory-bound, so the integer
    kernels, which read a fraction of the bytes, are fastest) and ``many`` for a prompt (hundreds
    of rows: compute-bound, where the integer kernels are 2-3x slower than a bf16 matrix product
    on the same weights, dequantised once at load: ``dense``)."""

    def __init__(self, weight: Any, kind: str) -> None:
        import torch

        self.kind = kind
        self.out_features = int(weight.shape[0])
        self.scale: Any = None
        self.dense: Any = None  # integer kinds: the rounded weights in bf16, for ``many``
        if kind == "int8":
            self.weight, self.scale = quantise_int8(weight)
            self.dense = dequantise_int8(self.weight, self.scale).to(torch.bfloat16)
        elif kind == "int4":
            q, scale, zero = quantise_int4(weight)
            self.dense = dequantise_int4(q, scale, zero).to(torch.bfloat16)
            self.weight = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
            # The kernel's layout: [in / GROUP, out, (scale, zero)].
            self.scale = torch.stack([scale.t(), zero.t()], dim=-1).contiguous()
        else:
            dtype = torch.bfloat16 if kind == "bf16" else torch.float32
            self.weight = weight.detach().to(dtype).contiguous()

    def __call__(self, x: Any) -> Any:
        import torch
        import torch.nn.functional as F

        if self.scale is None:
            return F.linear(x, self.weight)
        flat = x.reshape(-1, x.shape[-1])
        if self.kind == "int8":
            out = torch._weight_int8pack_mm(flat, self.weight, self.scale)
        else:
            out = torch._weight_int4pack_mm_for_cpu(flat, self.weight, GROUP, self.scale)
        return out.reshape(*x.shape[:-1], self.out_features)

    def many(self, x: Any) -> Any:
        """The same product for many rows at once (a prompt's positions)."""
        import torch.nn.functional as F

        return F.linear(x, self.weight if self.dense is None else self.dense)


class Head:
    """The output head (vocabulary x hidden, the largest product of a step) on int8 weights, one
    scale per vocabulary row, computed by one integer product for every row of a step.

    torch's weight-only int8 kernel costs ~1.3x at two rows what it costs at one (it does not
    share its weight reads between rows); ``torch._int_mm`` (int8 x int8, exact int32 sums) costs
    about the same at one to four rows, but takes int8 activations. Each row's activations are
    split in two int8 parts, ``x ~ s * hi + s / 254 * lo`` with ``s`` the row's largest
    magnitude over 127: within ``s / 508`` of ``x``, finer than the bf16 they come in. So the
    logits are those of the int8 weights to float32 precision (the weight-only kernel returns
    bf16 logits, off by up to ~0.03), and a row's logits do not depend on its batch mates
    (integer sums are exact). Measured on a 2-core EPYC, one thread: a two-row step ~1 ms
    faster; a one-row step between 0.4 ms faster and 0.4 ms slower, as the machine's memory
    traffic varies. And no bf16 copy of the head is kept (``Linear.many``'s, 56 MB)."""

    def __init__(self, weight: Any) -> None:
        q, scale = quantise_int8(weight)
        self.weight = q.t().contiguous()  # [in, out]: the layout _int_mm reads fastest
        self.scale = scale.float()

    def __call__(self, x: Any) -> Any:
        import torch

        rows = x.shape[0]
        xf = x.float()
        step = xf.abs().amax(-1, keepdim=True).clamp(min=1e-30) / 127
        hi = torch.round(xf / step)
        lo = torch.round((xf - hi * step) * (254 / step))
        sums = torch._int_mm(torch.cat([hi, lo]).to(torch.int8), self.weight).float()
        return (sums[:rows] + sums[rows:] / 254).mul_(step).mul_(self.scale)


@dataclass
class Layer:
    norm1: Any
    qkv: Linear
    out: Linear
    norm2: Any
    gate_up: Linear
    down: Linear


class KVCache:
    """Keys and values of every layer, ``[batch, kv heads, capacity, head dim]``, filled to
    ``length`` positions (the same for every row: rows are left-padded)."""

    def __init__(
        self, layers: int, heads: int, dim: int, capacity: int, dtype: Any, starts: list[int]
    ) -> None:
        import torch

        shape = (len(starts), heads, capacity, dim)
        self.k = [torch.zeros(shape, dtype=dtype) for _ in range(layers)]
        self.v = [torch.zeros(shape, dtype=dtype) for _ in range(layers)]
        self.length = 0
        # Where each row's own tokens begin (its left padding); attention never reads before.
        self.starts = list(starts)

    @property
    def capacity(self) -> int:
        return int(self.k[0].shape[2])

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more positions (doubling, so growth stays rare)."""
        need = self.length + extra
        if need <= self.capacity:
            return
        size = max(need, 2 * self.capacity)
        for store in (self.k, self.v):
            for i, old in enumerate(store):
                new = old.new_zeros((old.shape[0], old.shape[1], size, old.shape[3]))
                new[:, :, : self.length] = old[:, :, : self.length]
                store[i] = new

    def keep(self, rows: Any) -> None:
        """Only these rows (an index tensor) go on; the others left the batch."""
        self.starts = [self.starts[int(i)] for i in rows]
        for store in (self.k, self.v):
            for i, old in enumerate(store):
                store[i] = old.index_select(0, rows)


class LeanLlama:
    """The forward of a transformers ``LlamaForCausalLM`` for decoding, on copies of its weights
    (see the module's docstring). ``forward`` returns float32 logits of each row's last
    position."""

    def __init__(self, model: Any, weights: str) -> None:
        import torch

        if weights not in LEAN_WEIGHTS:
            raise ValueError(f"weights must be one of {LEAN_WEIGHTS}, not {weights!r}")
        config = model.config
        self.weights = weights
        self.dtype = torch.float32 if weights == "fp32" else torch.bfloat16
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // self.heads)
        self.eps = float(config.rms_norm_eps)
        inner = model.model
        rotary = inner.rotary_emb
        self.inv_freq = rotary.inv_freq.detach().float().cpu()
        self.rope_scale = float(getattr(rotary, "attention_scaling", 1.0))
        self.embed = inner.embed_tokens.weight.detach().to(self.dtype)
        self.norm = inner.norm.weight.detach().to(self.dtype)
        # int4w: the layers on GGUF's own 4-bit grid; the head (the tied embedding, 8-bit in
        # the GGUF) in int8, where 4 bits would round it coarser than the file does.
        kind = {"int8w": "int8", "int4w": "int4"}.get(weights, weights)
        self.head: Head | Linear = (
            Head(model.lm_head.weight)
            if kind in ("int8", "int4")
            else Linear(model.lm_head.weight, kind)
        )
        self.layers = [self._layer(layer, kind) for layer in inner.layers]

    def _layer(self, layer: Any, weights: str) -> Layer:
        import torch

        att, mlp = layer.self_attn, layer.mlp
        qkv = torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight])
        gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        return Layer(
            norm1=layer.input_layernorm.weight.detach().to(self.dtype),
            qkv=Linear(qkv, weights),
            out=Linear(att.o_proj.weight, weights),
            norm2=layer.post_attention_layernorm.weight.detach().to(self.dtype),
            gate_up=Linear(gate_up, weights),
            down=Linear(mlp.down_proj.weight, weights),
        )

    def new_cache(self, capacity: int, starts: list[int]) -> KVCache:
        """A cache for ``len(starts)`` rows, row ``b`` left-padded with ``starts[b]`` tokens."""
        # In float32, what attention computes in: keys and values are cast once, when stored,
        # instead of every step for every position (a bf16 cache read, cast and read again
        # cost more bytes per step than a float32 one read once).
        import torch

        return KVCache(
            len(self.layers), self.kv_heads, self.head_dim, capacity, torch.float32, starts
        )

    def _rms(self, x: Any, weight: Any) -> Any:
        import torch

        # As transformers does: normalise in float32, scale in the weights' dtype.
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * h.to(x.dtype)

    def forward(self, ids: Any, positions: Any, cache: KVCache, *, workers: int = 1) -> Any:
        """``ids``/``positions``: ``[batch, new]``, appended to ``cache``. Left padding is known
        to the cache (``starts``), so no mask: each row attends to its own tokens only, alone,
        which keeps a row's arithmetic the same whatever its batch mates (see ``_attend``).

        ``workers``: how many rows' prompts are read at once, each on its own thread (see
        ``_prompts``); a decoding step is one product for every row, whatever this says."""
        import torch

        cache.reserve(ids.shape[1])
        if ids.shape[1] == 1:
            logits = self._step(ids, positions, cache)
        else:
            logits = torch.cat(self._prompts(ids, positions, cache, workers))
        cache.length += ids.shape[1]
        return logits

    def _prompts(self, ids: Any, positions: Any, cache: KVCache, workers: int) -> list[Any]:
        """Each row's prompt, in order. With ``workers > 1`` rows are read on that many threads
        at once: a prompt is compute-bound and a row's prompt shares nothing with the others
        (its own tokens, its own rows of the cache), so two rows on two cores take about the
        time of one. Unlike more threads inside each product, these threads never wait for
        each other, so a core busy with other work slows them no more than it slows one."""
        import torch

        rows = range(ids.shape[0])
        if workers <= 1 or len(rows) == 1:
            return [self._prompt(b, ids, positions, cache) for b in rows]
        from concurrent.futures import Future, ThreadPoolExecutor

        inference, threads = torch.is_inference_mode_enabled(), torch.get_num_threads()

        def read(row: int) -> Any:
            # A new thread has neither the caller's thread count (its products would split,
            # and round, differently, and each take every core) nor its inference mode.
            torch.set_num_threads(threads)
            with torch.inference_mode(inference):
                return self._prompt(row, ids, positions, cache)

        with ThreadPoolExecutor(min(workers, len(rows)), thread_name_prefix="lean-prompt") as pool:
            futures: list[Future[Any] | None] = []
            for b in rows:
                try:
                    futures.append(pool.submit(read, b))
                except RuntimeError:  # the interpreter is exiting: no new threads
                    futures.append(None)
            return [
                self._prompt(b, ids, positions, cache) if f is None else f.result()
                for b, f in zip(rows, futures, strict=True)
            ]

    def _step(self, ids: Any, positions: Any, cache: KVCache) -> Any:
        """One new token per row, every row at once."""

        x = self.embed[ids]
        cos, sin = self._rope(positions)
        for i, layer in enumerate(self.layers):
            x = x + self._attend(layer, self._rms(x, layer.norm1), cos, sin, cache, i)
            x = x + self._mlp(layer, x, prompt=False)
        return self.head(self._rms(x[:, -1, :], self.norm)).float()

    def _prompt(self, row: int, ids: Any, positions: Any, cache: KVCache) -> Any:
        """Row ``row``'s own new tokens (its padding skipped), alone: the same shapes, and so
        the same arithmetic, as when it is decoded alone. A prompt is compute-bound, so rows
        gain nothing from sharing a product, and padding costs nothing here."""

        begin = max(cache.starts[row], cache.length)  # the row's first real position here
        skip = begin - cache.length
        x = self.embed[ids[row : row + 1, skip:]]
        cos, sin = self._rope(positions[row : row + 1, skip:])
        end = cache.length + ids.shape[1]
        first = cache.starts[row]
        new = x.shape[1]
        for i, layer in enumerate(self.layers):
            qkv = layer.qkv.many(self._rms(x, layer.norm1))
            q = self._project(qkv, cos, sin, cache, i, slice(row, row + 1), begin)
            keys = cache.k[i][row : row + 1, :, first:end]
            values = cache.v[i][row : row + 1, :, first:end]
            out = self._rows_attention(q.float(), keys, values)
            x = x + layer.out.many(out.transpose(1, 2).reshape(1, new, -1).to(self.dtype))
            x = x + self._mlp(layer, x, prompt=True)
        return self.head(self._rms(x[:, -1, :], self.norm)).float()

    def _project(
        self, qkv: Any, cos: Any, sin: Any, cache: KVCache, index: int, rows: slice, at: int
    ) -> Any:
        """Split the fused projection ``[rows, new, ...]`` into heads, rotate queries and keys,
        store keys and values in ``cache`` from position ``at``; returns the queries."""
        d, hq, hk = self.head_dim, self.heads, self.kv_heads
        batch, new = qkv.shape[0], qkv.shape[1]
        q, k, v = qkv.view(batch, new, hq + 2 * hk, d).transpose(1, 2).split([hq, hk, hk], dim=1)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        cache.k[index][rows, :, at : at + new] = k
        cache.v[index][rows, :, at : at + new] = v
        return q

    def _mlp(self, layer: Layer, x: Any, *, prompt: bool) -> Any:
        import torch

        h = self._rms(x, layer.norm2)
        gate, up = (layer.gate_up.many(h) if prompt else layer.gate_up(h)).chunk(2, dim=-1)
        hidden = torch.nn.functional.silu(gate) * up
        return layer.down.many(hidden) if prompt else layer.down(hidden)

    def _rope(self, positions: Any) -> tuple[Any, Any]:
        import torch

        freqs = positions[..., None].float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = (emb.cos() * self.rope_scale).to(self.dtype)[:, None]
        sin = (emb.sin() * self.rope_scale).to(self.dtype)[:, None]
        return cos, sin

    def _attend(self, layer: Layer, x: Any, cos: Any, sin: Any, cache: KVCache, index: int) -> Any:
        """A decoding step's attention. Each row attends alone, to its own keys only (its
        padding sliced off): the same shapes and arithmetic as when it is decoded alone, so a
        row gets the same result alone and in a batch (tested). One fused product per row on
        the float32 cache (grouped-query attention without copying keys): about 0.4 ms a step
        less, at one row or two, than the two products, softmax and cast of a bf16 cache it
        replaces (interleaved A/B on the offline model)."""
        import torch
        import torch.nn.functional as F

        batch = x.shape[0]
        q = self._project(layer.qkv(x), cos, sin, cache, index, slice(None), cache.length)
        q = q.float()
        end = cache.length + 1
        keys, values = cache.k[index], cache.v[index]
        out = torch.cat(
            [
                F.scaled_dot_product_attention(
                    q[b : b + 1],
                    keys[b : b + 1, :, first:end],
                    values[b : b + 1, :, first:end],
                    enable_gqa=True,
                )
                for b, first in enumerate(cache.starts)
            ]
        )
        return layer.out(out.transpose(1, 2).reshape(batch, 1, -1).to(self.dtype))

    def _rows_attention(self, q: Any, keys: Any, values: Any) -> Any:
        """Causal attention of ``q`` (several positions, the last of ``keys``) for one row."""
        import torch
        import torch.nn.functional as F

        new, span = q.shape[2], keys.shape[2]
        if new == span:
            return F.scaled_dot_product_attention(q, keys, values, is_causal=True, enable_gqa=True)
        # Queries at the end of a longer span: causal from the bottom right.
        allowed = torch.ones(new, span, dtype=torch.bool).tril(span - new)
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed, enable_gqa=True)


def _rotate(x: Any, cos: Any, sin: Any) -> Any:
    import torch

    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin
