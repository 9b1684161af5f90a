"""The ordinary run: the method distils (or selects) a synthetic set, then ``protocol.num_models``
fresh networks of every evaluation model are trained on it and tested."""

from __future__ import annotations

import contextlib
import statistics
import time

import torch

from bench.evaluation.evaluate import evaluate_synset, evaluate_together
from bench.run.tasks import TASKS, Task


def summary(values: list[float]) -> tuple[float, float]:
    """(mean, population std); one value has std 0."""
    mean = statistics.fmean(values)
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return mean, std


# Flagged as "at chance" up to 1.5x the chance accuracy: a constant predictor scores the class
# frequency (9.8-11.4 % on MNIST's test set), far below any trained network at IPC 1 (above 30 %).
CHANCE_FACTOR = 1.5


def mixed_precision(amp: str, device):
    """``--amp bf16``: the distillation's forward passes under bfloat16 autocast (CPU and CUDA).
    Parameters, synthetic images and their optimiser steps stay float32; the evaluation runs after
    this context, in float32, so accuracies compare with float32 runs."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


@TASKS.register("distill")
class DistillTask(Task):
    def run(self, resolved, ctx, dataset, device):
        t0 = time.perf_counter()
        with mixed_precision(resolved.config.amp, device):
            synset = resolved.method_cls().run(ctx)
        distill_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        together = evaluate_together()
        results = evaluate_synset(synset, dataset, list(resolved.eval_models), resolved.protocol,
                                  seed=resolved.config.seed, device=device, together=together)
        eval_s = time.perf_counter() - t1
        per_model = {}
        chance = 100.0 / dataset.num_classes
        for name, rs in results.items():
            mean, std = summary([r.last for r in rs])
            best_mean, _ = summary([r.test_selected_best for r in rs])
            per_model[name] = {
                "last": [r.last for r in rs], "mean": mean, "std": std,
                "test_selected_best": [r.test_selected_best for r in rs], "test_selected_best_mean": best_mean,
                "checks": [{str(k): v for k, v in r.checks.items()} for r in rs],
                "seconds": [r.seconds for r in rs],
                # a network that learnt nothing (diverged, or an absurd setting) scores about chance
                "chance": chance, "at_chance": mean <= CHANCE_FACTOR * chance,
            }
        primary = per_model[resolved.eval_models[0]]
        return synset, {
            "accuracy": {"mean": primary["mean"], "std": primary["std"], "model": resolved.eval_models[0],
                         "per_model": per_model, "reported": "last-epoch test accuracy",
                         # equal up to float rounding; named so two records can be told apart
                         "networks_trained": "together (vmap)" if together else "one after another"},
            "timings": {"distill_s": distill_s, "eval_s": eval_s, "total_s": distill_s + eval_s},
        }
