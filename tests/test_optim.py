"""The graph engine's device-tensor optimizer and schedule table against torch.optim, on the CPU."""

import pytest
import torch

from tinymnist.optim import DeviceOptimizer, lr_table, make_optimizer
from tinymnist.recipes import Recipe

STEPS = 300
CASES = [
    Recipe(optimizer="sgd", schedule="onecycle"),
    Recipe(optimizer="sgd", schedule="constant", nesterov=False, weight_decay=0.0),
    Recipe(optimizer="adamw", schedule="onecycle", lr=0.01, momentum=0.9, weight_decay=0.05),
    Recipe(optimizer="adamw", schedule="constant", lr=0.003, weight_decay=0.0),
]


@pytest.mark.parametrize("recipe", CASES, ids=lambda r: f"{r.optimizer}-{r.schedule}-wd{r.weight_decay}")
def test_device_optimizer_follows_torch_optim(recipe):
    torch.manual_seed(0)
    shapes = [(8, 1, 3, 3), (8,), (10, 8)]
    reference = [torch.randn(s, requires_grad=True) for s in shapes]
    ours = [p.detach().clone() for p in reference]
    opt, sched = make_optimizer(reference, recipe, STEPS)
    device_opt, lrs = DeviceOptimizer(ours, recipe), lr_table(recipe, STEPS)
    for step in range(STEPS):
        grads = [0.01 * torch.randn(s) for s in shapes]  # the same gradients for both, of a usual size
        for p, g in zip(reference, grads, strict=True):
            p.grad = g.clone()
        assert lrs[step].item() == pytest.approx(opt.param_groups[0]["lr"], rel=1e-6)
        opt.step()
        sched.step()
        device_opt.step(grads, lrs[step])
    for theirs, mine in zip(reference, ours, strict=True):
        torch.testing.assert_close(mine, theirs.detach(), rtol=1e-6, atol=1e-6)  # float32 rounding


def test_lr_table_is_the_onecycle_schedule():
    recipe = Recipe(lr=0.1, warmup=0.2)
    lrs = lr_table(recipe, 100)
    assert lrs.argmax().item() == 20 - 1 or lrs.argmax().item() == 20
    assert lrs.max().item() == pytest.approx(0.1, rel=1e-6)
    assert lrs[0].item() < 0.01 and lrs[-1].item() < 1e-4


def test_device_optimizer_state_round_trips():
    recipe = Recipe(optimizer="adamw", lr=0.01)
    params = [torch.ones(3)]
    opt = DeviceOptimizer(params, recipe)
    opt.step([torch.full((3,), 0.5)], torch.tensor(0.01))
    copy = DeviceOptimizer([params[0].clone()], recipe)
    copy.load_state_dict(opt.state_dict())
    for a, b in zip(opt.tensors(), copy.tensors(), strict=True):
        assert torch.equal(a, b)
