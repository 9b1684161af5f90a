"""The evaluation protocol itself: test images get the same normalisation as training images."""

import dataclasses

import pytest
import torch

from bench.data.datasets import load_dataset
from bench.data.synset import SyntheticSet
from bench.evaluation.evaluate import evaluate_synset, resolve_protocol


@pytest.mark.slow
def test_test_images_are_normalised_like_the_training_images():
    """With exaggerated statistics (mean 0.9, std 0.05) a network trained on normalised images
    sees values in [-18, 2]: it scores well only if the test images are normalised the same way
    (testing on raw [0, 1] images, a bug this guards against, gives near-chance accuracy)."""
    torch.set_num_threads(1)
    digits = load_dataset("digits")
    skewed = dataclasses.replace(digits, spec=dataclasses.replace(digits.spec, mean=(0.9,), std=(0.05,)))
    protocol = resolve_protocol("dsa", "digits", epochs=30, num_models=1, augment="none")
    for synset in (SyntheticSet(skewed.train_images.clone(), skewed.train_labels.clone(), space="unit"),
                   SyntheticSet(skewed.normalise(skewed.train_images), skewed.train_labels.clone())):
        assert evaluate_synset(synset, skewed, ["convnet3"], protocol, seed=0)["convnet3"][0].last > 85


@pytest.mark.parametrize("ipc", [1, 10])
def test_networks_trained_together_score_what_they_score_one_after_another(ipc):
    """vmap over the evaluation's networks: each keeps its own initialisation, data order and
    augmentation draws, so after a short training every network's accuracy (and each test check)
    equals the sequential path's. Over longer trainings float rounding of the batched kernels can
    move a few test images (measured: within 0.7 points after 31 epochs, 5 networks)."""
    import bench

    synset = bench.distill("random", "digits", ipc=ipc, seed=0)
    alone = bench.evaluate(synset, "digits", protocol="dsa", epochs=2, models=4, seed=3, device="cpu")
    together = bench.evaluate(synset, "digits", protocol="dsa", epochs=2, models=4, seed=3, device="cpu", together=True)
    assert together["per_model"] == alone["per_model"]
    assert len(set(alone["per_model"]["convnet3"])) > 1  # four different networks, not one repeated


def test_together_refuses_what_it_cannot_replay_in_one_line():
    import bench
    from bench.core.errors import BenchError

    synset = bench.distill("random", "digits", ipc=1, seed=0)
    with pytest.raises(BenchError, match="batched evaluation does not do CutMix"):
        bench.evaluate(synset, "digits", protocol="idc", epochs=1, models=2, together=True, device="cpu")
    with pytest.raises(BenchError, match="needs a model without batch-norm statistics, not 'convnet3-bn'"):
        bench.evaluate(synset, "digits", protocol="dsa", epochs=1, models=2, together=True, device="cpu",
                       architectures=("convnet3-bn",))


def test_eval_together_from_the_cli_is_recorded(tmp_path, monkeypatch):
    import json

    from bench.cli.main import main

    monkeypatch.setenv("BENCH_EVAL_TOGETHER", "0")  # restored (unset) after the test: main() sets it
    args = ["run", "--method", "random", "--dataset", "digits", "--ipc", "1", "--scale", "smoke",
            "--eval-set", "epochs=2", "--eval-set", "num_models=3"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--eval-together", "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads(next((tmp_path / d).glob("runs/*/record.json")).read_text()) for d in "ab")
    assert a["accuracy"]["networks_trained"] == "one after another"
    assert b["accuracy"]["networks_trained"] == "together (vmap)"
    assert a["run_id"] == b["run_id"] and a["accuracy"]["per_model"]["convnet3"]["last"] == \
        b["accuracy"]["per_model"]["convnet3"]["last"]
