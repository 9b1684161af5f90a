"""Is MTT's matching loss smooth enough for its image gradient to mean anything? For one expert,
start epochs and fixed student batches and DSA draws, compare the loss after a step of size eps
against the image gradient with its first-order prediction L - eps * |g|^2.

    python experiments/trajectory/first_order.py --dataset mnist --experts <store>/experts/<key> \\
        --eps 0,1,10,100,1000,3000,10000
    python experiments/trajectory/first_order.py --dataset digits --experts <store>/experts/<key> \\
        --eps 0,1e-5,1e-4,3e-4,1e-3,2e-3,4e-3

Experts come from any run or ``bench experts`` (their folder holds ``expert_000.pt``...). Measured
2026-12-05: on MNIST the loss follows the prediction to steps of about 1000 (|g| about 0.007); on
the built-in 8x8 digits a step of 1e-5 raises it by 2.4e-4 where a fall of 3.3e-5 is predicted
(ConvNet-3's last GroupNorm normalises 2x2 maps), so trajectory matching cannot work there."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.data.datasets import load_dataset
from bench.nets.augment import DiffAugment
from bench.nets.models import build_model
from bench.nets.trajectory import (FlatNetwork, StudentBatches,
                                   unrolled_meta_gradient)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--experts", type=Path, required=True, help="a folder of expert_*.pt files")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--syn-steps", type=int, default=10)
    p.add_argument("--batch-syn", type=int, default=20)
    p.add_argument("--expert-epochs", type=int, default=2)
    p.add_argument("--starts", default="0,2")
    p.add_argument("--eps", default="0,1,10,100,1000")
    p.add_argument("--lr", type=float, default=0.01, help="the student's lr (lr_teacher)")
    args = p.parse_args()
    torch.manual_seed(0)
    ds = load_dataset(args.dataset, args.data_root)
    trajectory = torch.load(sorted(args.experts.glob("expert_*.pt"))[0], weights_only=False)["trajectory"]
    model = FlatNetwork(build_model("convnet3", ds))
    index = torch.cat([ds.class_indices(c)[torch.randperm(len(ds.class_indices(c)))[:args.ipc]]
                       for c in range(ds.num_classes)])
    images = ds.normalise(ds.train_images[index]).clone().requires_grad_(True)
    labels = ds.train_labels[index]
    lr = torch.tensor(args.lr, requires_grad=True)
    augment = DiffAugment(ds.spec.dsa_strategy, "dsa")
    for start in map(int, args.starts.split(",")):
        theta0, target = trajectory[start], trajectory[start + args.expert_epochs]
        batches = StudentBatches.draw(len(images), args.syn_steps, args.batch_syn, "cpu")
        draws = [augment.draw(len(ix)) for ix in batches.indices]
        batches.augment = lambda x, step: augment.apply(x, draws[step])
        loss, grad, _ = unrolled_meta_gradient(model, images, labels, lr, theta0, target, batches)
        print(f"start epoch {start}: loss {float(loss):.6f}, |g| {float(grad.norm()):.4g}")
        for eps in map(float, args.eps.split(",")):
            with torch.no_grad():
                moved = (images - eps * grad).requires_grad_(True)
            after, _, _ = unrolled_meta_gradient(model, moved, labels, lr, theta0, target, batches)
            print(f"  eps {eps:g}: loss {float(after):.6f}, first-order prediction {float(loss) - eps * float(grad.norm()) ** 2:.6f}")


if __name__ == "__main__":
    main()
