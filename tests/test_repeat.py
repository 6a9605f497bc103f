"""The multi-seed protocol on a small subset."""

import json

import pytest

from helpers import subset
from tinymnist import repeat as repeat_module
from tinymnist.cli import main
from tinymnist.errors import TinyMnistError
from tinymnist.recipes import get, override

TINY = override(get("tiny4k"), epochs=1, batch_size=100)


@pytest.fixture
def small_data(mnist, monkeypatch):
    small = subset(mnist, 2000, 500)
    monkeypatch.setattr(repeat_module.data, "load", lambda *a, **k: small)


def test_two_seeds_then_a_rerun_trains_nothing(small_data, tmp_path, monkeypatch):
    out, runs = tmp_path / "results" / "tiny.json", tmp_path / "runs"
    state = repeat_module.repeat("tiny", TINY, 2, out, runs, log=lambda s: None)
    saved = json.loads(out.read_text())
    assert [r["seed"] for r in saved["runs"]] == [1, 2] == [r["seed"] for r in state["runs"]]
    assert saved["summary"]["seeds"] == 2 and saved["machine"]["cores"] >= 1
    assert saved["runs"][0]["test_loss"] != saved["runs"][1]["test_loss"]  # different seeds differ

    monkeypatch.setattr(repeat_module, "train_seed", lambda *a: pytest.fail("trained again"))
    again = repeat_module.repeat("tiny", TINY, 2, out, runs, log=lambda s: None)
    assert again["runs"] == saved["runs"]


def test_a_stopped_sweep_keeps_its_finished_seeds(small_data, tmp_path):
    out, runs = tmp_path / "tiny.json", tmp_path / "runs"
    repeat_module.repeat("tiny", TINY, 1, out, runs, log=lambda s: None)
    state = repeat_module.repeat("tiny", TINY, 2, out, runs, log=lambda s: None)
    assert [r["seed"] for r in state["runs"]] == [1, 2]


def test_damaged_results_file_is_an_error_and_kept(tmp_path, capsys):
    damaged = tmp_path / "seed.json"
    damaged.write_text('{"runs": [')
    code = main(["repeat", "--recipe", "seed", "--seeds", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "damaged results file" in err and str(damaged) in err
    assert damaged.read_text() == '{"runs": ['


def test_results_of_another_recipe_are_not_mixed_in(small_data, tmp_path):
    out = tmp_path / "tiny.json"
    repeat_module.repeat("tiny", TINY, 1, out, tmp_path / "runs", log=lambda s: None)
    with pytest.raises(TinyMnistError, match="different 'tiny' recipe"):
        repeat_module.repeat("tiny", override(TINY, lr=0.2), 1, out, tmp_path / "runs", log=lambda s: None)
