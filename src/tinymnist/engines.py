"""The two engines that run an epoch's training steps, side by side, with one interface (`Engine`).

Both build each batch (`batch`: gather, augment, normalise) and its loss (`scores`: cross-entropy,
with a distillation teacher's term when the recipe has one) with the same functions.

The eager engine (`EagerEngine`, the default on CPUs and MPS) is the plain loop: one Python step
per batch with torch.optim and its scheduler.

The graph engine (`GraphEngine`, the default on CUDA) runs the whole training step as one CUDA
graph, replayed. On a GPU the tiny models leave it idle: an eager step spends 5-6 ms launching about
a hundred small kernels from Python, whatever the batch size. Here one step (batch gather from the
resident dataset, augmentation, forward, backward, optimizer update) keeps all of its state on the
device and never waits on the host: batch indices come from the epoch's permutation through a step
counter, random numbers from the default generator (which CUDA graphs replay with fresh offsets),
the learning rate from the schedule laid out as a tensor, and the update from
`optim.DeviceOptimizer`. On CUDA the step is captured once and replayed; elsewhere the same step
runs eagerly (what the CPU tests check).

The warm-up that capture needs, and one trial replay, run on copies' behalf: state is saved before
and restored after them, so a run does exactly its own steps, and a resumed run continues as an
uninterrupted one. If capture or that first replay fails (a driver, memory, an op that cannot be
captured), `create` says why in one line and falls back: a new run to the eager engine, a resumed
graph run (whose optimizer state is the graph engine's) to its own step run uncaptured. A graph
replays the image size it captured, so progressive resizing captures again when the size changes;
if that fails, the run says so and goes on with its step uncaptured.
"""

import time
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn
from tqdm import tqdm

from tinymnist import distill
from tinymnist.augment import random_affine, random_jitter
from tinymnist.checkpoint import first_line
from tinymnist.data import MNIST, normalize
from tinymnist.errors import TinyMnistError
from tinymnist.optim import DeviceOptimizer, lr_table, make_optimizer
from tinymnist.precision import forward
from tinymnist.recipes import Recipe

ENGINES = ("auto", "eager", "graph")
HEARTBEAT_SECONDS = 10.0  # without a terminal, a progress line this often within an epoch
WARMUP_STEPS = 3  # eager steps before capture: cuDNN and autograd set up their workspaces


class Engine(Protocol):
    """What training needs of an engine: the epochs, the learning rate, and state to save and resume."""

    name: str  # "eager" or "graph", as recorded in the run's config
    capture_seconds: float  # the one-time capture, outside the timed epochs (0 once reported)
    side: int  # the side of this epoch's training images (progressive resizing; 28 by default)
    fallback: str  # why it went on otherwise than it started, if that happened mid-run ("" if not)

    @property
    def lr(self) -> float: ...  # the learning rate of the next step

    def epoch(self, generator: torch.Generator) -> tuple[float, float]: ...  # mean loss and accuracy

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def batch(
    data: MNIST, idx: torch.Tensor, recipe: Recipe, side: int, channels_last: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """The training images at `idx` as one augmented, normalised float batch in the run's memory format."""
    x = data.train_images[idx].unsqueeze(1).float().div_(255)
    x = random_affine(x, recipe.degrees, recipe.translate, recipe.scale, generator, side)
    x = normalize(random_jitter(x, recipe.brightness, recipe.contrast, generator), data.dataset)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def scores(
    model: nn.Module, teacher: nn.Module | None, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, bf16: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits for batch `x` and its training loss (with the teacher's term, if any)."""
    logits = forward(model, x, bf16)
    return logits, distill.loss(logits, y, distill.teacher_logits(teacher, x, bf16), recipe)


def choose_engine(requested: str, device: torch.device) -> str:
    """The graph engine on CUDA, where launching kernels from Python is the bottleneck; eager elsewhere."""
    if requested not in ENGINES:
        raise TinyMnistError(f"--engine {requested!r}: choose {', '.join(ENGINES)}")
    if requested == "auto":
        return "graph" if device.type == "cuda" else "eager"
    return requested


def create(
    kind: str, model: nn.Module, recipe: Recipe, data: MNIST, setting: dict, heartbeat: Callable | None = None,
    progress: bool = False, resuming: bool = False, log: Callable[[str], None] = print,
    teacher: nn.Module | None = None,
) -> tuple[Engine, str]:  # fmt: skip
    """The engine `kind` ("eager" or "graph", from `choose_engine`), ready to train; a graph engine is
    captured here, on CUDA, from `setting` (`precision.choose`'s: bf16, channels_last). Returns it and
    why it is not the one asked for ("" when it is). `teacher`: the recipe's, loaded (`distill`)."""

    def eager() -> EagerEngine:
        engine = EagerEngine(model, recipe, data, setting, heartbeat, teacher)
        engine.progress = progress
        return engine

    if kind == "eager":
        return eager(), ""
    graph = GraphEngine(model, recipe, data, setting, log, teacher)
    try:
        graph.capture()
        return graph, ""
    except RuntimeError as e:  # torch's errors, CUDA's and out-of-memory included
        instead = "its step uncaptured" if resuming else "the eager engine"
        reason = f"graph engine: capture failed ({first_line(e)}); training with {instead}"
    log(reason)
    # a resumed run's checkpoint holds the graph engine's optimizer state: only its own step continues it
    return (graph if resuming else eager()), reason


class EagerEngine:
    """The eager loop: one Python step per batch with torch.optim and its scheduler."""

    name = "eager"

    def __init__(
        self, model: nn.Module, recipe: Recipe, data: MNIST, setting: dict, heartbeat: Callable | None,
        teacher: nn.Module | None = None,
    ) -> None:  # fmt: skip
        self.model, self.recipe, self.data, self.heartbeat, self.teacher = model, recipe, data, heartbeat, teacher
        self.bf16, self.channels_last = setting["bf16"], setting["channels_last"]
        self.side = 28  # the side of this epoch's training images (progressive resizing)
        self.steps = len(data.train_labels) // recipe.batch_size  # the last partial batch is dropped
        self.opt, self.sched = make_optimizer(model.parameters(), recipe, recipe.epochs * self.steps)
        self.capture_seconds = 0.0
        self.fallback = ""
        self.progress = False  # a tqdm bar, on a terminal

    @property
    def lr(self) -> float:
        return float(self.sched.get_last_lr()[0])

    def epoch(self, generator: torch.Generator) -> tuple[float, float]:
        """One pass over the training images in the order drawn from `generator`; mean loss and accuracy."""
        model, recipe, data, bs = self.model, self.recipe, self.data, self.recipe.batch_size
        model.train()
        order = torch.randperm(len(data.train_labels), generator=generator, device=generator.device)
        total_loss = torch.zeros((), device=data.train_labels.device)
        correct = torch.zeros((), dtype=torch.long, device=data.train_labels.device)
        start = last_beat = time.perf_counter()
        for i in tqdm(range(self.steps), disable=not self.progress, leave=False, unit="batch"):
            idx = order[i * bs : (i + 1) * bs]
            x, y = batch(data, idx, recipe, self.side, self.channels_last, generator), data.train_labels[idx]
            logits, loss = scores(model, self.teacher, x, y, recipe, self.bf16)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            total_loss += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            now = time.perf_counter()
            if self.heartbeat and now - last_beat >= HEARTBEAT_SECONDS:
                self.heartbeat(i + 1, self.steps, (i + 1) * bs / (now - start))
                last_beat = now
        seen = self.steps * bs
        return total_loss.item() / seen, correct.item() / seen

    def state_dict(self) -> dict:
        return {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])


class GraphEngine:
    """Trains `model` on `data` one epoch at a time with the device-resident step: replayed as a CUDA
    graph once `capture` succeeded, run uncaptured otherwise (on CPUs, what the tests check)."""

    name = "graph"

    def __init__(
        self, model: nn.Module, recipe: Recipe, data: MNIST, setting: dict, log: Callable[[str], None] = print,
        teacher: nn.Module | None = None,
    ) -> None:  # fmt: skip
        self.model, self.recipe, self.data, self.log, self.teacher = model, recipe, data, log, teacher
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
        self.graph: torch.cuda.CUDAGraph | None = None
        self.capture_seconds = 0.0
        self.fallback = ""

    def step(self) -> None:
        idx = self.order.index_select(0, self.i).squeeze(0)
        x, y = batch(self.data, idx, self.recipe, self.side, self.channels_last), self.data.train_labels[idx]
        logits, loss = scores(self.model, self.teacher, x, y, self.recipe, self.bf16)
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

    def capture(self) -> None:
        """On CUDA: capture the step and replay it once, with every state tensor and the random number
        generator restored after the warm-up and after that replay, also when either fails."""
        if self.i.device.type != "cuda":
            return
        start = time.perf_counter()
        self.model.train()
        saved = [t.detach().clone() for t in self.state_tensors()]
        rng = torch.cuda.get_rng_state()

        def restore() -> None:
            with torch.no_grad():
                for t, s in zip(self.state_tensors(), saved, strict=True):
                    t.copy_(s)
            torch.cuda.set_rng_state(rng)

        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    self.i.zero_()
                    self.step()
            torch.cuda.current_stream().wait_stream(side)
            restore()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.step()
            graph.replay()  # the first replay fails here, if it fails, not in the middle of a run
            torch.cuda.synchronize()
        finally:
            restore()
        self.graph, self.captured_side = graph, self.side
        self.capture_seconds += time.perf_counter() - start

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
        if self.graph is not None and self.captured_side != self.side:  # a graph replays the shapes it captured
            try:
                self.capture()
            except RuntimeError as e:  # capture restored every state tensor: the same step goes on, uncaptured
                self.graph = None
                side = f"{self.side}x{self.side}"
                self.fallback = f"graph engine: capture at {side} failed ({first_line(e)}); continuing uncaptured"
                self.log(self.fallback)
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
