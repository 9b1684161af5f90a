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
