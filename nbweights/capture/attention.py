"""Attention maps of ``nn.MultiheadAttention`` modules on the probe input, changing nothing.

Layers such as ``nn.TransformerEncoderLayer`` call their attention with ``need_weights=False``,
so the maps are never computed. A forward pre-hook, present only while the probe runs, keeps
what the module is called with (query, key, masks); the maps are then recomputed from the
module's own input projections, as ``need_weights=True, average_attn_weights=False`` would
return them, without touching what the model computes.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

#: Queries and keys kept per map at most (the first ones), so a long sequence stays bounded.
MAX_TOKENS = 64


def attention_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every ``nn.MultiheadAttention`` of a model, by qualified name."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, nn.MultiheadAttention)]


def _argument(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _projections(module: nn.MultiheadAttention) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None,
                                                        torch.Tensor | None]:
    """Query and key projection weights and biases of a module (packed or separate)."""
    embed = module.embed_dim
    if module._qkv_same_embed_dim:
        w_q, w_k = module.in_proj_weight[:embed], module.in_proj_weight[embed:2 * embed]
    else:
        w_q, w_k = module.q_proj_weight, module.k_proj_weight
    bias = module.in_proj_bias
    b_q, b_k = (bias[:embed], bias[embed:2 * embed]) if bias is not None else (None, None)
    return w_q, w_k, b_q, b_k


def _mask_for(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask (True: not allowed) as -inf additions, a float mask as it is."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def attention_weights(module: nn.MultiheadAttention, args: tuple, kwargs: dict) -> torch.Tensor:
    """Each head's attention weights [heads, queries, keys] for the first sequence of the batch
    a module was called with (``args``/``kwargs`` of its forward)."""
    query, key = _argument(args, kwargs, 0, "query"), _argument(args, kwargs, 1, "key")
    key_padding_mask = _argument(args, kwargs, 3, "key_padding_mask")
    attn_mask = _argument(args, kwargs, 5, "attn_mask")
    batched = query.dim() == 3
    if batched:  # the first sequence, [length, embed]
        query, key = (query[0], key[0]) if module.batch_first else (query[:, 0], key[:, 0])
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask[0]
    w_q, w_k, b_q, b_k = _projections(module)
    q, k = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k)
    heads, dims = module.num_heads, module.head_dim
    if module.bias_k is not None:
        k = torch.cat([k, module.bias_k.reshape(1, -1)])
    if module.add_zero_attn:
        k = torch.cat([k, k.new_zeros(1, k.shape[1])])
    q = q.reshape(len(q), heads, dims).transpose(0, 1)  # [heads, queries, dims]
    k = k.reshape(len(k), heads, dims).transpose(0, 1)
    scores = q @ k.transpose(1, 2) / math.sqrt(dims)   # [heads, queries, keys]
    extra_keys = scores.shape[-1] - key.shape[0]
    mask = _mask_for(attn_mask, scores.dtype)
    if mask is not None:
        if mask.dim() == 3:  # [batch * heads, queries, keys]: the first sequence's heads
            mask = mask[:heads]
        scores = scores + F.pad(mask, (0, scores.shape[-1] - mask.shape[-1]))
    padding = _mask_for(key_padding_mask, scores.dtype)
    if padding is not None:
        scores = scores + F.pad(padding, (0, extra_keys))
    return torch.softmax(scores, dim=-1)


def kept_map(module: nn.Module, args: tuple, kwargs: dict) -> torch.Tensor:
    """What a probe keeps of one call: its first sequence's attention weights, bounded to
    :data:`MAX_TOKENS` queries and keys."""
    return attention_weights(module, args, kwargs)[:, :MAX_TOKENS, :MAX_TOKENS].float()


@contextmanager
def fast_path_off() -> Iterator[None]:
    """Torch's fused attention fast path, which skips the modules' forward (and so their hooks),
    is switched off while inside (it computes the same outputs)."""
    fast_path = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)
