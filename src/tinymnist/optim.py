"""Optimizers and learning-rate schedules, built from a recipe.

The eager training loop uses torch.optim and its schedulers. The CUDA graph engine needs every
step's work on the device with no host synchronisation, so it uses the same updates written as
foreach tensor math (`DeviceOptimizer`), with the learning rate read from the schedule laid out in
advance as one tensor of per-step values (`lr_table`). Tests hold both to torch.optim within 1e-6.
"""

from collections.abc import Iterable, Sequence

import torch

from tinymnist.errors import TinyMnistError
from tinymnist.recipes import Recipe

ADAM_BETA2, ADAM_EPS = 0.999, 1e-8


def make_optimizer(
    params: Iterable[torch.Tensor], recipe: Recipe, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """torch.optim's optimizer and per-step scheduler for `recipe` over `steps` steps."""
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(
            params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov, weight_decay=recipe.weight_decay
        )
    elif recipe.optimizer == "adamw":
        opt = torch.optim.AdamW(
            params, lr=recipe.lr, betas=(recipe.momentum, ADAM_BETA2), weight_decay=recipe.weight_decay
        )
    else:
        raise TinyMnistError(f"optimizer {recipe.optimizer!r}: choose sgd or adamw")
    if recipe.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=recipe.lr, total_steps=steps, pct_start=recipe.warmup, cycle_momentum=False
        )
    elif recipe.schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    else:
        raise TinyMnistError(f"schedule {recipe.schedule!r}: choose onecycle or constant")
    return opt, sched


def lr_table(recipe: Recipe, steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The learning rate of each of `steps` steps, exactly as the recipe's torch scheduler sets them."""
    opt, sched = make_optimizer([torch.zeros(1, requires_grad=True)], recipe, steps)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # a parameter without a gradient: nothing moves, but the scheduler sees a step
        sched.step()
    return torch.tensor(lrs, dtype=torch.float32, device=device)


class DeviceOptimizer:
    """SGD (momentum, Nesterov, weight decay) or AdamW as torch.optim computes them, on device tensors
    only: the learning rate is a 0-d tensor and AdamW's step count lives on the device, so a CUDA graph
    can capture the update. SGD's momentum buffers start at zero, which equals torch's first step."""

    def __init__(self, params: Sequence[torch.Tensor], recipe: Recipe) -> None:
        if recipe.optimizer not in ("sgd", "adamw"):
            raise TinyMnistError(f"optimizer {recipe.optimizer!r}: choose sgd or adamw")
        self.params, self.recipe = list(params), recipe
        zeros = [torch.zeros_like(p) for p in params]
        if recipe.optimizer == "sgd":
            self.buffers = {"momentum": zeros}
        else:
            self.buffers = {"exp_avg": zeros, "exp_avg_sq": [torch.zeros_like(p) for p in params]}
        # float64: AdamW's bias corrections (1 - 0.999**step) lose digits in float32, as torch's do not
        self.step_count = torch.zeros((), dtype=torch.float64, device=params[0].device)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr: torch.Tensor) -> None:
        r = self.recipe
        self.step_count += 1
        if r.optimizer == "sgd":
            g = torch._foreach_add(grads, self.params, alpha=r.weight_decay) if r.weight_decay else list(grads)
            buf = self.buffers["momentum"]
            torch._foreach_mul_(buf, r.momentum)
            torch._foreach_add_(buf, g)
            update = torch._foreach_add(g, buf, alpha=r.momentum) if r.nesterov else buf
            torch._foreach_sub_(self.params, torch._foreach_mul(update, lr))
            return
        m, v = self.buffers["exp_avg"], self.buffers["exp_avg_sq"]
        torch._foreach_mul_(self.params, 1 - lr * r.weight_decay)
        torch._foreach_lerp_(m, grads, 1 - r.momentum)
        torch._foreach_mul_(v, ADAM_BETA2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - ADAM_BETA2)
        step_size = lr / (1 - r.momentum**self.step_count).float()
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, (1 - ADAM_BETA2**self.step_count).sqrt().float())
        torch._foreach_add_(denom, ADAM_EPS)
        update = torch._foreach_div(m, denom)
        torch._foreach_sub_(self.params, torch._foreach_mul(update, step_size))

    def tensors(self) -> list[torch.Tensor]:
        """Every state tensor, for saving, restoring and copying in place."""
        return [t for ts in self.buffers.values() for t in ts] + [self.step_count]

    def state_dict(self) -> dict:
        buffers = {k: [t.clone() for t in ts] for k, ts in self.buffers.items()}
        return {"kind": self.recipe.optimizer, **buffers, "step": self.step_count.clone()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.recipe.optimizer:
            raise TinyMnistError(f"optimizer state of {state.get('kind')!r}, expected {self.recipe.optimizer!r}")
        for name, tensors in self.buffers.items():
            for t, saved in zip(tensors, state[name], strict=True):
                t.copy_(saved)
        self.step_count.copy_(state["step"])
