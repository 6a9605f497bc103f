"""Fold BatchNorm layers into neighbouring convolutions, for inference.

In eval mode a BatchNorm is a per-channel affine map y = a * x + c, with
a = gamma / sqrt(running_var + eps) and c = beta - a * running_mean. It folds exactly into

- the convolution right before it (Conv -> BN): scale the conv's output channels by `a` and
  add `c` to its bias (`torch.nn.utils.fusion.fuse_conv_bn_eval`);
- the convolution right after it (BN -> Conv, possibly with Dropout or Identity between,
  which do nothing in eval mode): scale the conv's *input* channels by `a` and add the conv
  of the constant `c` to its bias. This holds only if the conv pads nothing: its zero padding
  would otherwise stand for a * x + c = 0, which is no longer zero once `a` and `c` are gone.

The seed network is Conv -> ReLU -> BN -> Dropout -> Conv, so its BatchNorms fold forward into
the next convolution, except the one before the padded `conv2.4`, which stays. A BatchNorm
followed by a ReLU or a pooling layer (not exact through a negative scale) stays too.
"""

import copy
from typing import cast

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

PASS_THROUGH = (nn.Dropout, nn.Dropout2d, nn.Identity)  # identity in eval mode


def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, c) with bn(x) = a * x + c per channel, in eval mode."""
    assert bn.running_var is not None and bn.running_mean is not None, "folding needs running statistics"
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    c = (bn.bias if bn.affine else 0) - a * bn.running_mean
    return a, c


@torch.no_grad()
def fold_into_next(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """The conv equal to conv(bn(x)) for an unpadded, ungrouped conv."""
    a, c = bn_affine(bn)
    fused = copy.deepcopy(conv)
    fused.weight.mul_(a.view(1, -1, 1, 1))
    extra = (conv.weight * c.view(1, -1, 1, 1)).sum((1, 2, 3))
    fused.bias = nn.Parameter(extra if conv.bias is None else conv.bias + extra)
    return fused


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(str(node.target)) if node.op == "call_module" else None


def _only_user(node: fx.Node) -> fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _next_conv(gm: fx.GraphModule, bn_node: fx.Node, calls: dict[str, int]) -> fx.Node | None:
    """The conv node that alone consumes bn_node's output (through pass-through layers), if foldable."""
    node = _only_user(bn_node)
    while node is not None and isinstance(_module(gm, node), PASS_THROUGH):
        node = _only_user(node)
    conv = _module(gm, node) if node is not None else None
    if node is None or not isinstance(conv, nn.Conv2d) or calls[str(node.target)] != 1:
        return None
    unpadded = conv.padding != "same" and all(p == 0 for p in conv.padding)
    return node if unpadded and conv.groups == 1 else None


def fold_batchnorm(model: nn.Module) -> fx.GraphModule:
    """An eval-mode copy of `model` with every foldable BatchNorm2d folded into a convolution."""
    gm = fx.symbolic_trace(copy.deepcopy(model).eval())
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    for node in list(gm.graph.nodes):
        bn = _module(gm, node)
        if not isinstance(bn, nn.BatchNorm2d) or not bn.track_running_stats or calls[node.target] != 1:
            continue
        source = node.args[0]
        before = _module(gm, source) if isinstance(source, fx.Node) else None
        if isinstance(before, nn.Conv2d) and len(source.users) == 1 and calls[str(source.target)] == 1:
            gm.add_submodule(str(source.target), fuse_conv_bn_eval(before, bn))
        elif after := _next_conv(gm, node, calls):
            conv = cast(nn.Conv2d, gm.get_submodule(str(after.target)))  # _next_conv found a Conv2d
            gm.add_submodule(str(after.target), fold_into_next(bn, conv))
        else:
            continue
        node.replace_all_uses_with(source)
        gm.graph.erase_node(node)
    gm.delete_all_unused_submodules()
    gm.graph.lint()
    gm.recompile()
    return gm


def count_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
