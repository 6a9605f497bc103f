"""Every recipe field, seed and numeric option is checked (type, range, finite) in one place, before
any folder is made; models have a size ceiling; non-finite weights are refused; no answer is NaN."""

import json
import math

import pytest
import torch
from PIL import Image

import tinymnist
from helpers import subset
from tinymnist import checkpoint, models, pretrained, recipes, training
from tinymnist.cli import main
from tinymnist.errors import TinyMnistError

NESTED = [[[[[[[[[[1]]]]]]]]]]
# Values no field of each type accepts.
WRONG_TYPE = {
    int: [1.5, 2.0, True, "3", [3], {"n": 3}, NESTED, None],
    float: [True, "0.1", [0.1], {"lr": 0.1}, NESTED, None, 1j],
    str: [1, True, ["seed"], {"name": "seed"}, NESTED, None, b"seed"],
    bool: [1, 0, "true", 1.0, [True], None],
}
# Numbers out of every range, or not finite.
HOSTILE_NUMBERS = [math.nan, math.inf, -math.inf, -1, 10**7, 1e308, 10**400, -(10**400)]


def hostile(name: str) -> list:
    kind, rule = recipes.TYPES[name], recipes.RULES[name]
    values = [v for v in WRONG_TYPE[kind] if v is not None]
    if kind in (int, float):
        values += [v for v in HOSTILE_NUMBERS if kind is float or not isinstance(v, float) or not math.isfinite(v)]
        values = [v for v in values if not (type(v) in (int, float) and _allowed(v, rule))]
    if rule.choices:
        values += ["", "SGD", rule.choices[0] + " ", "x" * 10_000]
    return values


def _allowed(value: float, rule: recipes.Rule) -> bool:
    try:
        return rule.low <= value <= rule.high and not (rule.above and value == rule.low)
    except TypeError:
        return False


CASES = [(name, value) for name in recipes.TYPES for value in hostile(name)]


def test_every_field_has_a_rule():
    assert recipes.RULES.keys() == recipes.TYPES.keys()


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={str(v)[:12]}" for n, v in CASES])
def test_hostile_values_are_refused_before_any_folder(name, value, tmp_path):
    with pytest.raises(recipes.RecipeError, match=f"^{name}="):
        recipes.check_value(name, value)
    with pytest.raises(recipes.RecipeError):
        recipes.override(recipes.SEED, **{name: value})
    with pytest.raises(recipes.RecipeError, match=f"^config.json: {name}="):
        recipes.from_dict({**recipes.to_dict(recipes.SEED), name: value}, "config.json")
    out = tmp_path / "run"
    with pytest.raises(TinyMnistError):
        tinymnist.train(out=out, data_dir=tmp_path / "no-data", download=False, **{name: value})
    assert not out.exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("lr=nan", "lr=nan: must be a finite number"),
        ("lr=inf", "lr=inf: must be a finite number"),
        ("lr=1e400", "lr=inf: must be a finite number"),
        ("label_smoothing=2", "label_smoothing=2.0: must be at least 0 and at most 1"),
        ("batch_size=10000000", "batch_size=10000000: must be at least 1 and at most 60,000"),
        ("warmup=2", "warmup=2.0: must be at least 0 and below 1"),
        ("warmup=1", "warmup=1.0: must be at least 0 and below 1"),
        ("momentum=-1", "momentum=-1.0: must be at least 0 and below 1"),
        ("weight_decay=-1", "weight_decay=-1.0: must be at least 0 and at most 1"),
        ("epochs=1000000000", "epochs=1000000000: must be at least 1 and at most 1,000"),
        ("momentum=0", "Nesterov momentum needs momentum > 0"),
        ("model=tinynet-100000-8-8-8", "each width must be at most 4,096 channels"),
        ("model=tinynet-4000-4000-8-8", "parameters, over the ceiling of 1,000,000"),
        ("model=tinynet-" + "9" * 5000 + "-8-8-8", "each width must be at most 4,096 channels"),
    ],
)
def test_cli_settings_are_one_line_before_any_folder(setting, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--set", setting, "--out", str(out), "--data-dir", str(tmp_path), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinymnist: error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--seed", str(2**66)], "seed=73786976294838206464: must be at least 0 and at most 4,294,967,295"),
        (["train", "--seed", "-1"], "seed=-1: must be at least 0"),
        (["train", "--val", "0"], "val=0: must be at least 1"),
        (["train", "--val", "-5"], "val=-5: must be at least 1"),
        (["summary", "--model", "tinynet-100000-8-8-8"], "each width must be at most 4,096"),
        (["summary", "--model", "sepnet-4096-4096-4096-4096-4096"], "over the ceiling of 1,000,000"),
        (["repeat", "--seeds", "1000000000000"], "--seeds=1000000000000: must be at least 1 and at most 1,000"),
        (["repeat", "--jobs", "0"], "--jobs=0: must be at least 1"),
        (["repeat", "--jobs", "1000000"], "--jobs=1000000: must be at least 1 and at most 256"),
        (["sweep", "s", "--workers", "1000000"], "--workers=1000000: must be at least 1 and at most 256"),
        (["sweep", "s", "--trials", "-1"], "--trials=-1: must be at least 0"),
        (["sweep", "s", "--train-images", "0"], "--train-images=0: must be at least 1"),
    ],
)
def test_cli_options_are_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = ["--out", "run", "--data-dir", str(tmp_path), "--no-download"] if argv[0] == "train" else []
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinymnist: error: ") and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_deeply_nested_recipe_files_are_one_line(suffix, tmp_path, capsys):
    path = tmp_path / f"deep{suffix}"
    path.write_text("[" * 100_000 + "]" * 100_000 if suffix == ".json" else "a = " + "[" * 100_000 + "]" * 100_000)
    assert main(["train", "--recipe", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tinymnist: error: --recipe {path}: not valid") and err.count("\n") == 1, err
    based = tmp_path / "based.toml"
    based.write_text('base = ["seed"]\n')
    assert main(["train", "--recipe", str(based)]) == 2
    assert "base ['seed'] is not a recipe" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("param", "spec"),
    [("lr", {"low": -1.0, "high": 0.3}), ("label_smoothing", 2.0), ("batch_size", {"choice": [64, 0]})],
)
def test_sweep_spaces_are_checked_by_the_same_rules(param, spec, tmp_path, capsys):
    space = {**recipes.SPACES["tiny4k"], "params": {**recipes.SPACES["tiny4k"]["params"], param: spec}}
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    assert main(["sweep", str(tmp_path / "s"), "--space", str(path), "--trials", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{param}=" in err, err
    assert not (tmp_path / "s").exists()


def test_a_batch_larger_than_the_training_set_is_refused_before_the_folder(tmp_path, mnist):
    small = subset(mnist, 256, 64)
    with pytest.raises(TinyMnistError, match="batch_size=512: more than the 256 training images"):
        training.train(recipes.override(recipes.get("tiny3k"), batch_size=512), small, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_diverged_run_stops_with_one_line(tmp_path, mnist, monkeypatch):
    monkeypatch.setattr(training.EagerEngine, "epoch", lambda self, generator: (math.nan, 0.1))
    small = subset(mnist, 256, 64)
    with pytest.raises(TinyMnistError, match="training diverged in epoch 1"):
        training.train(recipes.override(recipes.get("tiny3k"), epochs=1), small, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / checkpoint.LAST).exists()


def nan_weights(state_dict: dict) -> dict:
    name = next(k for k, v in state_dict.items() if v.is_floating_point())
    return {**state_dict, name: torch.full_like(state_dict[name], math.nan)}


@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "serve"])
def test_checkpoints_with_non_finite_weights_are_refused(command, trained_checkpoint, tmp_path, capsys):
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    torch.save({**ckpt, "state_dict": nan_weights(ckpt["state_dict"])}, tmp_path / "nan.pt")
    extra = {"predict": ["x.png"], "export": ["--format", "torchscript"], "serve": ["--port", "0"]}
    assert main([command, str(tmp_path / "nan.pt"), *extra.get(command, [])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weights are not finite (NaN or infinity in" in err, err


def test_shipped_weights_with_nan_are_refused(trained_checkpoint, tmp_path, monkeypatch):
    ckpt = checkpoint.read(trained_checkpoint)
    card = {"name": "broken", "model": "seed", "recipe": recipes.to_dict(recipes.SEED)}
    pretrained.write(tmp_path, card, nan_weights(ckpt["state_dict"]))
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path)
    with pytest.raises(TinyMnistError, match="weights are not finite"):
        tinymnist.load("broken")


def test_logits_that_overflow_never_answer_nan(trained_checkpoint, tmp_path, capsys):
    """Finite weights can still make infinite logits: the answer is still a probability, valid JSON."""
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    weights = {**ckpt["state_dict"]}
    weights["conv_final.weight"] = weights["conv_final.weight"] * 1e38
    torch.save({**ckpt, "state_dict": weights}, tmp_path / "huge.pt")
    img = Image.new("L", (28, 28))
    img.paste(255, (10, 4, 16, 24))
    img.save(tmp_path / "one.png")
    assert main(["predict", str(tmp_path / "huge.pt"), str(tmp_path / "one.png"), "--json", "--top", "10"]) == 0
    record = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert all(0 <= t["probability"] <= 1 for t in record["top"])
    assert main(["predict", str(tmp_path / "huge.pt"), str(tmp_path / "one.png")]) == 0
    assert "nan" not in capsys.readouterr().out


def test_registered_recipes_and_models_pass_their_own_rules():
    for name, recipe in recipes.RECIPES.items():
        assert recipes.validate(recipe) is recipe, name
    assert models.known("tinynet-64-64-64-64") and not models.known("tinynet-0-8-8-8")
