"""The graph engine: the whole training step as one CUDA graph, replayed.

On a GPU the tiny models leave it idle: an eager step spends 5-6 ms launching about a hundred small
kernels from Python, whatever the batch size. Here one step (batch gather from the resident dataset,
augmentation, forward, backward, optimizer update) keeps all of its state on the device and never
waits on the host: batch indices come from the epoch's permutation through a step counter, random
numbers from the default generator (which CUDA graphs replay with fresh offsets), the learning rate
from the schedule laid out as a tensor, and the update from `optim.DeviceOptimizer`. On CUDA the step
is captured once and replayed; elsewhere the same step runs eagerly (what the CPU tests check).

The warm-up that capture needs runs on copies' behalf: state is saved before and restored after it,
so a run does exactly its own steps, and a resumed run continues as an uninterrupted one.
"""

import time

import torch
import torch.nn.functional as F
from torch import nn

from tinymnist.augment import random_affine
from tinymnist.data import MNIST, normalize
from tinymnist.optim import DeviceOptimizer, lr_table
from tinymnist.precision import forward
from tinymnist.recipes import Recipe

WARMUP_STEPS = 3  # eager steps before capture: cuDNN and autograd set up their workspaces


class GraphEngine:
    """Trains `model` on `data` one epoch at a time with the device-resident step."""

    def __init__(self, model: nn.Module, recipe: Recipe, data: MNIST, setting: dict, capture: bool) -> None:
        self.model, self.recipe, self.data = model, recipe, data
        self.bf16, self.channels_last = setting["bf16"], setting["channels_last"]
        self.side = self.captured_side = 28  # the side of this epoch's training images (progressive resizing)
        device = data.train_images.device
        self.steps = len(data.train_labels) // recipe.batch_size  # the last partial batch is dropped
        self.lrs = lr_table(recipe, recipe.epochs * self.steps, device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = DeviceOptimizer(self.params, recipe)
        self.order = torch.zeros(self.steps, recipe.batch_size, dtype=torch.long, device=device)
        self.i = torch.zeros(1, dtype=torch.long, device=device)  # step within the epoch
        self.t = torch.zeros(1, dtype=torch.long, device=device)  # step within the run
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.capture = capture and device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.capture_seconds = 0.0

    def step(self) -> None:
        r, d = self.recipe, self.data
        idx = self.order.index_select(0, self.i).squeeze(0)
        x = d.train_images[idx].unsqueeze(1).float().div_(255)
        x = normalize(random_affine(x, r.degrees, r.translate, r.scale, side=self.side), d.dataset)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = d.train_labels[idx]
        logits = forward(self.model, x, self.bf16)
        loss = F.cross_entropy(logits, y, label_smoothing=r.label_smoothing)
        grads = torch.autograd.grad(loss, self.params)
        self.optimizer.step(list(grads), self.lrs.index_select(0, self.t).squeeze(0))
        with torch.no_grad():
            self.loss_sum += loss.detach() * len(y)
            self.correct += (logits.argmax(1) == y).sum()
            self.i += 1
            self.t += 1

    def state_tensors(self) -> list[torch.Tensor]:
        """Everything a step changes."""
        model_state = [*self.model.parameters(), *self.model.buffers()]
        return model_state + self.optimizer.tensors() + [self.i, self.t, self.loss_sum, self.correct]

    def _capture(self) -> None:
        start = time.perf_counter()
        saved = [t.detach().clone() for t in self.state_tensors()]
        rng = torch.cuda.get_rng_state()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self.i.zero_()
                self.step()
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():
            for t, s in zip(self.state_tensors(), saved, strict=True):
                t.copy_(s)
        torch.cuda.set_rng_state(rng)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.step()
        torch.cuda.synchronize()
        self.captured_side = self.side
        self.capture_seconds = time.perf_counter() - start

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return float(self.lrs[min(int(self.t), len(self.lrs) - 1)])

    def epoch(self, generator: torch.Generator) -> tuple[float, float]:
        """One pass in the order drawn from `generator`; returns mean loss and accuracy."""
        n, bs = len(self.data.train_labels), self.recipe.batch_size
        order = torch.randperm(n, generator=generator, device=generator.device)[: self.steps * bs]
        self.order.copy_(order.view(self.steps, bs))
        self.i.zero_()
        self.loss_sum.zero_()
        self.correct.zero_()
        self.model.train()
        if self.capture and (self.graph is None or self.captured_side != self.side):  # shapes are captured
            self._capture()
        for _ in range(self.steps):
            if self.graph is not None:
                self.graph.replay()
            else:
                self.step()
        seen = self.steps * bs
        return self.loss_sum.item() / seen, self.correct.item() / seen

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": {"step": int(self.t)}}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.t.fill_(state["scheduler"]["step"])
