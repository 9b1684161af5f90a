"""Golden step values from the authors' VICO-UoE/DatasetCondensation code (run outside DREAM-bench).

Inputs are made from seeds both sides reproduce: network weights = torch.manual_seed(W) then the
authors' ConvNet(channel, classes, 128, 3, relu, instancenorm, avgpooling, im_size); real and
synthetic images = torch.manual_seed(S); torch.randn(shape). Writes JSON to argv[1]."""
import json
import os
import sys
import types

AUTHORS = os.environ.get("VICO_REPO", "../authors/DatasetCondensation")  # an export of the authors' repository
sys.path.insert(0, AUTHORS)
import networks
import torch
import torch.nn as nn
import utils
from probe_common import authors_commit, cpu_name, in_float64, stats  # noqa: E402 (beside this script)

COMMIT = authors_commit("VICO_COMMIT", AUTHORS)
torch.set_num_threads(1)
C, H, K, IPC, B = 1, 28, 3, 2, 8




def inputs():
    torch.manual_seed(1)
    real = torch.randn(K, B, C, H, H)
    torch.manual_seed(2)
    syn = torch.randn(K * IPC, C, H, H)
    return real, syn


def net():
    torch.manual_seed(0)
    return networks.ConvNet(C, K, 128, 3, "relu", "instancenorm", "avgpooling", (H, H))


def dc_step():
    """main.py's inner matching for one outer-loop step: per class, 'ours' distance, summed; then
    optimizer_img (SGD lr 0.1 momentum 0.5) one step."""
    real, syn = inputs()
    model = net()
    params = list(model.parameters())
    image_syn = syn.clone().requires_grad_(True)
    opt = torch.optim.SGD([image_syn], lr=0.1, momentum=0.5)
    args = types.SimpleNamespace(dis_metric="ours", device="cpu")
    crit = nn.CrossEntropyLoss()
    loss = torch.tensor(0.0)
    per_class = []
    for c in range(K):
        lab = torch.ones(B, dtype=torch.long) * c
        gw_real = [g.detach().clone() for g in torch.autograd.grad(crit(model(real[c]), lab), params)]
        img_syn = image_syn[c * IPC:(c + 1) * IPC].reshape(IPC, C, H, H)
        gw_syn = torch.autograd.grad(crit(model(img_syn), torch.ones(IPC, dtype=torch.long) * c), params, create_graph=True)
        d = utils.match_loss(gw_syn, gw_real, args)
        per_class.append(float(d))
        loss = loss + d
    opt.zero_grad()
    loss.backward()
    grad = image_syn.grad.clone()
    opt.step()
    return {"loss": float(loss), "per_class": per_class, "grad": stats(grad), "images_after_step": stats(image_syn)}


def dm_step():
    """main_DM.py's per-class loss: ||mean embed(real) - mean embed(syn)||^2, summed over classes;
    optimizer_img SGD lr 1.0 momentum 0.5, one step. The network is in train mode, frozen."""
    real, syn = inputs()
    model = net()
    model.train()
    for p in model.parameters():
        p.requires_grad = False
    image_syn = syn.clone().requires_grad_(True)
    opt = torch.optim.SGD([image_syn], lr=1.0, momentum=0.5)
    loss = torch.tensor(0.0)
    for c in range(K):
        out_real = model.embed(real[c]).detach()
        out_syn = model.embed(image_syn[c * IPC:(c + 1) * IPC].reshape(IPC, C, H, H))
        loss += torch.sum((torch.mean(out_real, dim=0) - torch.mean(out_syn, dim=0)) ** 2)
    opt.zero_grad()
    loss.backward()
    grad = image_syn.grad.clone()
    opt.step()
    return {"loss": float(loss), "grad": stats(grad), "images_after_step": stats(image_syn)}


def eval_schedule(epochs=10):
    """utils.evaluate_synset's learning rate in each training epoch, recorded by wrapping SGD, and
    whether the optimiser (and its momentum) is rebuilt at the drop."""
    made, lrs = [], []
    real_sgd = torch.optim.SGD

    class RecordingSGD(real_sgd):
        def __init__(self, params, **kw):
            super().__init__(params, **kw)
            made.append(kw["lr"])

        def step(self, *a, **k):
            lrs.append((len(made), self.param_groups[0]["lr"]))
            return super().step(*a, **k)

    utils.torch.optim.SGD = RecordingSGD
    try:
        torch.manual_seed(0)
        model = networks.ConvNet(C, K, 8, 1, "relu", "instancenorm", "avgpooling", (H, H))
        x, y = torch.randn(4, C, H, H), torch.arange(4) % K
        test = torch.utils.data.DataLoader(utils.TensorDataset(x, y), batch_size=4)
        args = types.SimpleNamespace(device="cpu", lr_net=0.01, epoch_eval_train=epochs, batch_train=256, dsa=False,
                                     dc_aug_param=None)
        utils.evaluate_synset(0, model, x, y, test, args)
    finally:
        utils.torch.optim.SGD = real_sgd
    # one step per epoch here (4 images, batch 256): the lr of each training epoch, 1-indexed
    return {"E": epochs, "epochs_trained": len(lrs), "lr_per_epoch": [lr for _, lr in lrs],
            "optimizer_built": len(made), "optimizer_of_epoch": [k for k, _ in lrs]}


def init_weights():
    return {name: stats(p) for name, p in net().named_parameters()}




out = {
    "provenance": {"repository": "VICO-UoE/DatasetCondensation", "commit": COMMIT,
                   "files": "utils.py (match_loss, distance_wb, evaluate_synset, epoch), networks.py (ConvNet), "
                            "main.py (the matching step), main_DM.py (the DM loss)",
                   "patches": "none needed for these probes (no DiffAugment, contiguous tensors)",
                   "torch": torch.__version__, "threads": 1,
                   "command": "VICO_REPO=../authors/DatasetCondensation python experiments/parity/vico_probe.py tests/parity/vico.json"},
    "shapes": {"channels": C, "size": H, "classes": K, "ipc": IPC, "batch_real": B, "weights_seed": 0,
               "real_seed": 1, "syn_seed": 2, "real": "torch.randn(K, B, C, H, H)", "syn": "torch.randn(K*IPC, C, H, H)"},
    "init_weights": init_weights(), "dc_ours_step": dc_step(), "dm_step": dm_step(), "eval_schedule": eval_schedule(),
    "float64": {"init_weights": in_float64(init_weights), "dc_ours_step": in_float64(dc_step),
                "dm_step": in_float64(dm_step)},
}
out["provenance"]["cpu"] = cpu_name()
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(json.dumps({k: out[k] for k in ("dc_ours_step", "dm_step", "eval_schedule")}, indent=0)[:2500])
