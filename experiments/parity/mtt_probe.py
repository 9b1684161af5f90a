"""Golden values for MTT (GeorgeCazenavette/mtt-distillation ``distill.py``): one distillation step
from fixed inputs, computed with the authors' ``networks.ConvNet`` and ``reparam_module.ReparamModule``
and the step of their ``main()`` (student unroll, normalised parameter loss, SGD on images and lr).

Run beside an export of their repository (never imported by the package):

    MTT_REPO=../authors/mtt python experiments/parity/mtt_probe.py tests/parity/mtt.json

Inputs both sides rebuild: ``manual_seed(0)`` then their ``ConvNet(1, 10, 128, 3, relu, instancenorm,
avgpooling, (28, 28))`` gives the expert's start parameters; ``manual_seed(3)``, target = start +
0.01 * randn; ``manual_seed(1)``, 20 images randn(20, 1, 28, 28), labels 0,0,1,1,...; syn_lr 0.01;
3 student steps on batches of 10 whose indices are drawn by their code (``torch.randperm`` after
``manual_seed(4)``) and recorded; no augmentation (their ``--no_aug``: the DSA ops have their own
golden values); lr_img 100, lr_lr 1e-5, both SGD momentum 0.5. One thread.
"""
import json
import os
import platform
import sys

import torch

from probe_common import cpu_name, in_float64, stats

REPO = os.environ.get("MTT_REPO", "../authors/mtt")
sys.path.insert(0, REPO)
import networks  # noqa: E402  (the authors' module, from the export)
from reparam_module import ReparamModule  # noqa: E402

SYN_STEPS, BATCH_SYN, LR0, LR_IMG, LR_LR = 3, 10, 0.01, 100.0, 1e-5


def one_step() -> dict:
    dtype = torch.get_default_dtype()
    torch.manual_seed(0)
    net = networks.ConvNet(1, 10, 128, 3, "relu", "instancenorm", "avgpooling", (28, 28)).to(dtype)
    start = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    torch.manual_seed(3)
    target = start + 0.01 * torch.randn_like(start)
    torch.manual_seed(1)
    image_syn = torch.randn(20, 1, 28, 28).requires_grad_(True)
    label_syn = torch.arange(10).repeat_interleave(2)
    syn_lr = torch.tensor(LR0, dtype=dtype).requires_grad_(True)
    optimizer_img = torch.optim.SGD([image_syn], lr=LR_IMG, momentum=0.5)
    optimizer_lr = torch.optim.SGD([syn_lr], lr=LR_LR, momentum=0.5)
    student_net = ReparamModule(net)
    student_net.train()
    num_params = sum(p.numel() for p in student_net.parameters())

    # distill.py main(), one iteration, as written there (no augmentation)
    torch.manual_seed(4)
    student_params = [start.clone().requires_grad_(True)]
    indices_chunks, used = [], []
    for _ in range(SYN_STEPS):
        if not indices_chunks:
            indices_chunks = list(torch.split(torch.randperm(len(image_syn)), BATCH_SYN))
        these = indices_chunks.pop()
        used.append(these.tolist())
        out = student_net(image_syn[these], flat_param=student_params[-1])
        ce = torch.nn.CrossEntropyLoss()(out, label_syn[these])
        grad = torch.autograd.grad(ce, student_params[-1], create_graph=True)[0]
        student_params.append(student_params[-1] - syn_lr * grad)
    param_loss = torch.nn.functional.mse_loss(student_params[-1], target, reduction="sum") / num_params
    param_dist = torch.nn.functional.mse_loss(start, target, reduction="sum") / num_params
    grand_loss = param_loss / param_dist
    optimizer_img.zero_grad()
    optimizer_lr.zero_grad()
    grand_loss.backward()
    image_grad, lr_grad = image_syn.grad.clone(), float(syn_lr.grad)
    optimizer_img.step()
    optimizer_lr.step()
    return {"indices": used, "loss": float(grand_loss), "image_grad": stats(image_grad), "lr_grad": lr_grad,
            "images_after": stats(image_syn), "lr_after": float(syn_lr), "num_params": num_params}


def main(path: str) -> None:
    torch.set_num_threads(1)
    commit = os.environ.get("MTT_COMMIT", "50dccea47ba48b9cfb3b9c59375d7da92e4e603b")
    record = {
        "provenance": {
            "repository": "GeorgeCazenavette/mtt-distillation", "commit": commit,
            "functions": ["networks.ConvNet", "reparam_module.ReparamModule", "distill.py main(): one iteration"],
            "patches": "networks.py: out.view(out.size(0), -1) -> out.reshape(out.size(0), -1) (current torch)",
            "torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_name(),
            "command": "MTT_REPO=../authors/mtt python experiments/parity/mtt_probe.py tests/parity/mtt.json",
        },
        "inputs": {"syn_steps": SYN_STEPS, "batch_syn": BATCH_SYN, "syn_lr": LR0, "lr_img": LR_IMG, "lr_lr": LR_LR},
        "float32": one_step(),
        "float64": in_float64(one_step),
    }
    with open(path, "w") as fh:
        json.dump(record, fh, indent=1)
    print(json.dumps({k: record[k]["loss"] for k in ("float32", "float64")}))


if __name__ == "__main__":
    main(sys.argv[1])
