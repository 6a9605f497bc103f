"""Knowledge distillation and brightness/contrast jitter: the loss, which teachers a run may use (never
one that saw the images it is judged on), what a run records of its teacher, and bad teachers refused
with one line before anything is written."""

import json
import shutil
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from helpers import subset
from tinymnist import checkpoint, data, distill, training
from tinymnist.augment import random_jitter
from tinymnist.cli import main
from tinymnist.errors import TinyMnistError
from tinymnist.recipes import get, override

SMALL = override(get("tiny4k"), epochs=1, batch_size=64, bf16=False)


def quiet(line: str) -> None:
    pass


def test_the_loss_is_cross_entropy_without_a_teacher_and_mixes_in_the_teachers_term_with_one():
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 10, requires_grad=True), torch.randint(0, 10, (8,))
    recipe = override(SMALL, label_smoothing=0.1, distill=0.25, temperature=3.0)
    assert torch.equal(distill.loss(logits, labels, None, recipe), F.cross_entropy(logits, labels, label_smoothing=0.1))
    ce = F.cross_entropy(logits, labels, label_smoothing=0.1)
    same = distill.loss(logits, labels, logits.detach(), recipe)  # a teacher that agrees adds nothing
    assert torch.allclose(same, 0.75 * ce)
    teacher = torch.randn(8, 10)
    mixed = distill.loss(logits, labels, teacher, recipe)
    kl = (F.softmax(teacher / 3, 1) * (F.log_softmax(teacher / 3, 1) - F.log_softmax(logits / 3, 1))).sum(1).mean()
    assert torch.allclose(mixed, 0.75 * ce + 0.25 * 9 * kl, atol=1e-6)
    mixed.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_jitter_draws_nothing_when_off_and_keeps_pixels_in_range():
    images = torch.rand(16, 1, 28, 28)
    g = torch.Generator().manual_seed(1)
    assert random_jitter(images, 0.0, 0.0, g) is images and torch.equal(
        g.get_state(), torch.Generator().manual_seed(1).get_state()
    )
    a = random_jitter(images.clone(), 0.3, 0.5, torch.Generator().manual_seed(2))
    b = random_jitter(images.clone(), 0.3, 0.5, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and not torch.equal(a, images)
    one = random_jitter(torch.ones(200, 1, 2, 2) * 0.5, 0.0, 0.5, torch.Generator().manual_seed(3))
    factors = one[:, 0, 0, 0] / 0.5  # per image, one factor in [0.5, 1.5]
    assert 0.5 <= factors.min() and factors.max() <= 1.5 and factors.std() > 0.1
    assert torch.equal(one, one[:, :, :1, :1].expand_as(one))  # the same factor for every pixel of an image


@pytest.fixture(scope="module")
def tiny(mnist):
    return subset(mnist, 1280, 300)


@pytest.fixture(scope="module")
def teacher_run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    training.train(SMALL, tiny, out, seed=1, log=quiet)
    return out


@pytest.mark.slow
def test_a_distilled_run_records_its_teacher_and_learns(mnist, trained_checkpoint, tmp_path):
    recipe = override(
        get("seed"), epochs=1, batch_size=64, teacher=str(trained_checkpoint), brightness=0.2, contrast=0.2
    )
    four_thousand = subset(mnist, 4000, 1000)
    final = training.train(recipe, four_thousand, tmp_path / "student", seed=2, log=quiet)
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    taught = config["teacher"]
    assert taught == final["teacher"] and taught["model"] == "seed" and taught["split"] == "test"
    assert taught["file"] == str(trained_checkpoint) and taught["accuracy"] > 0.99 and len(taught["sha256"]) == 64
    assert final["final"]["test_accuracy"] > 0.8
    plain = training.train(override(recipe, teacher=""), four_thousand, tmp_path / "plain", seed=2, log=quiet)
    assert plain["final"]["train_loss"] != final["final"]["train_loss"]  # the teacher's term changed the loss


@pytest.mark.slow
def test_a_resumed_run_refuses_a_teacher_that_changed(tiny, teacher_run, tmp_path):
    mine = tmp_path / "teacher"
    shutil.copytree(teacher_run, mine)
    recipe = override(SMALL, epochs=2, teacher=str(mine))
    with pytest.raises(KeyboardInterrupt):
        training.train(recipe, tiny, tmp_path / "student", seed=2, log=quiet, on_epoch=interrupt)
    training.train(SMALL, tiny, tmp_path / "other", seed=9, log=quiet)
    shutil.copy(tmp_path / "other" / checkpoint.FINAL, mine / checkpoint.FINAL)
    with pytest.raises(TinyMnistError, match="changed since this run started"):
        training.train(recipe, tiny, tmp_path / "student", seed=2, resume=True, log=quiet)


def interrupt(record: dict) -> None:
    raise KeyboardInterrupt


@pytest.mark.slow
def test_a_validation_run_refuses_a_teacher_that_saw_its_validation_images(mnist, teacher_run, tmp_path):
    val = subset(data.validation_split(mnist, 5000), 640, 200)
    for teacher in (str(teacher_run), "tiny20k"):  # trained on every training image: a run, a shipped model
        with pytest.raises(TinyMnistError, match="so it saw this run's 200 validation images"):
            training.train(override(SMALL, teacher=teacher), val, tmp_path / "s", split="val", log=quiet)
    assert not (tmp_path / "s").exists()
    held_out = training.train(SMALL, val, tmp_path / "val-teacher", seed=1, split="val", log=quiet)
    assert held_out["eval_images"] == 200
    student = training.train(
        override(SMALL, teacher=str(tmp_path / "val-teacher")), val, tmp_path / "s", split="val", log=quiet
    )
    assert student["teacher"]["split"] == "val" and student["teacher"]["held_out"] == 200


def test_a_shipped_model_teaches_a_test_run(tiny):
    model, record = distill.load_teacher("tiny20k", tiny, "test", torch.device("cpu"))
    assert record["model"] == "tiny20k" and record["split"] == "test" and record["accuracy"] > 0.99
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


@pytest.mark.parametrize(
    ("teacher", "message"),
    [
        ("no-such-run", "no such run folder or checkpoint file, nor a shipped model"),
        ("x" * 5000, "not a path or a shipped model's name"),
        ("a\0b", "not a path or a shipped model's name"),
        ("/" + "y" * 300 + "/z", "cannot read"),  # a name longer than the system allows
    ],
)
def test_bad_teachers_are_refused_in_one_line_before_anything_is_written(teacher, message, mnist, tmp_path):
    with pytest.raises(TinyMnistError, match=message):
        distill.load_teacher(teacher, mnist, "test", torch.device("cpu"))


def test_the_cli_refuses_a_bad_or_unfinished_teacher_with_exit_2(tmp_path, capsys, mnist_dir, trained_checkpoint):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    ckpt.pop("final", None)
    torch.save(ckpt, unfinished / checkpoint.LAST)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for teacher, message in [
        (unfinished, "is an unfinished run's checkpoint"),
        (junk, "not a tinymnist checkpoint"),
        (tmp_path / "none", "no such run folder"),
    ]:
        out = tmp_path / "out"
        argv = ["train", "--recipe", "tiny4k", "--epochs", "1", "--set", f"teacher={teacher}", "--out", str(out)]
        assert main([*argv, "--data-dir", str(mnist_dir), "--no-download"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
        assert not out.exists()


def test_a_teacher_of_another_dataset_is_refused(tiny):
    fashion = replace(tiny, dataset="fashion-mnist")  # only the name matters here
    with pytest.raises(TinyMnistError, match="trained on mnist, not on fashion-mnist"):
        distill.load_teacher("tiny20k", fashion, "test", torch.device("cpu"))


def test_distillation_with_progressive_resizing_is_refused_before_anything_is_written(tmp_path, mnist_dir, capsys):
    out = tmp_path / "out"
    argv = ["train", "--recipe", "fast", "--set", "teacher=tiny20k", "--out", str(out), "--data-dir", str(mnist_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "would show the teacher 20x20 images it never trained on" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
