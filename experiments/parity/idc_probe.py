"""Golden step values from the authors' IDC code (snu-mllab/Efficient-Dataset-Condensation), run
outside DREAM-bench on an export of their repository. Writes JSON to argv[1].

Patches to the export (CPU only, maths untouched), made with sed before running:
  device='cuda' -> device='cpu' and .cuda() -> .cpu() in every .py file;
np.int( -> int( in misc/utils.py (rand_bbox; np.int is gone from NumPy >= 1.24); and, in this
script, an empty `efficientnet_pytorch` module (train.py imports it at the top; the
EfficientNet branch is never used here).

Inputs from seeds both sides reproduce: network weights = torch.manual_seed(0) then the authors'
ConvNet(K, net_norm='instance', net_depth=3, net_width=128, channel=1, im_size=(28, 28)); real images
torch.manual_seed(1); torch.randn(B, C, H, W); synthetic images (in [0, 1], one class)
torch.manual_seed(2); torch.rand(IPC, C, H, W). Each probe runs in float32 and in float64."""
import json
import os
import sys
import types

AUTHORS = os.environ.get("IDC_REPO", "../authors/IDC")
sys.path.insert(0, AUTHORS)
sys.modules["efficientnet_pytorch"] = types.SimpleNamespace(EfficientNet=None)  # unused import of train.py
import condense  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from probe_common import authors_commit, cpu_name, in_float64, stats  # noqa: E402 (beside this script)
from models import convnet as CN  # noqa: E402

COMMIT = authors_commit("IDC_COMMIT", AUTHORS)
torch.set_num_threads(1)
K, C, H, IPC, B, FACTOR, CLS = 10, 1, 28, 2, 8, 2, 1  # 10 classes: train_epoch reports top-5




def net():
    torch.manual_seed(0)
    return CN.ConvNet(K, net_norm="instance", net_depth=3, net_width=128, channel=1, im_size=(H, H))


def inputs():
    torch.manual_seed(1)
    real = torch.randn(B, C, H, H)
    torch.manual_seed(2)
    return real, torch.rand(IPC, C, H, H)


def synthesizer():
    args = types.SimpleNamespace(ipc=IPC, factor=FACTOR, decode_type="single")
    return condense.Synthesizer(args, K, C, H, H, device="cpu")


def decode():
    _, syn = inputs()
    data, target = synthesizer().decode_zoom(syn, torch.full((IPC,), CLS), FACTOR)
    return {"images": stats(data), "shape": list(data.shape), "targets": target.tolist(),
            "per_image_sums": data.double().flatten(1).sum(1).tolist()}


def match_step(metric):
    """condense.py's inner matching for one class: decode, matchloss (match='grad', conv weights
    only: bias=False, fc=False), one optim_img step (SGD lr 0.01, momentum 0.5). No augmentation."""
    real, syn = inputs()
    model = net()
    model.train()
    base = syn.clone().requires_grad_(True)
    opt = torch.optim.SGD([base], lr=0.01, momentum=0.5)
    img_syn, lab_syn = synthesizer().decode_zoom(base, torch.full((IPC,), CLS), FACTOR)
    args = types.SimpleNamespace(match="grad", metric=metric, bias=False, fc=False)
    loss = condense.matchloss(args, real, img_syn, torch.full((B,), CLS), lab_syn, model)
    opt.zero_grad()
    loss.backward()
    grad = base.grad.clone()
    opt.step()
    return {"loss": float(loss), "grad": stats(grad), "images_after_step": stats(base)}


def network_step():
    """train.py's train_epoch for one batch without CutMix (mix_p 0): CE, SGD(lr 0.01, momentum 0.9,
    weight decay 5e-4), one step; the loss and the weights after it."""
    real, _ = inputs()
    model = net()
    opt = torch.optim.SGD(model.parameters(), 0.01, momentum=0.9, weight_decay=5e-4)
    args = types.SimpleNamespace(mix_p=0.0, beta=1.0, nclass=K, print_freq=10**9, verbose=False, epoch_print_freq=1)

    class OneBatch(list):  # what train_epoch reads of its loader: iteration and .device
        device = "cpu"

    import train  # noqa: E402 (needs the path and the stub above)
    train.train_epoch(args, OneBatch([(real.clone(), torch.arange(B) % K)]), model, torch.nn.CrossEntropyLoss(), opt,
                      mixup="cut")
    out = model(real)
    return {"weights_after_step": {n: stats(p) for n, p in model.named_parameters()},
            "logits_after_step": stats(out)}


def network_step_cutmix():
    """train_epoch on one batch with CutMix certain (mix_p 1, beta 1): numpy seeded 5, torch 6. The
    draws are replayed afterwards (numpy: the coin, lambda, then rand_bbox's row and column; torch:
    the partner permutation) so ours can apply the same lambda, permutation and box."""
    real, _ = inputs()
    target = torch.arange(B) % K
    model = net()
    opt = torch.optim.SGD(model.parameters(), 0.01, momentum=0.9, weight_decay=5e-4)
    args = types.SimpleNamespace(mix_p=1.0, beta=1.0, nclass=K, print_freq=10**9, verbose=False, epoch_print_freq=1)

    class OneBatch(list):
        device = "cpu"

    import train  # noqa: E402
    from misc import utils as idc_utils  # noqa: E402
    np.random.seed(5)
    torch.manual_seed(6)
    _, _, loss = train.train_epoch(args, OneBatch([(real.clone(), target)]), model, torch.nn.CrossEntropyLoss(),
                                   opt, mixup="cut")
    np.random.seed(5)
    np.random.rand(1)
    lam = float(np.random.beta(1.0, 1.0))
    state = np.random.get_state()
    row, col = int(np.random.randint(H)), int(np.random.randint(H))
    np.random.set_state(state)
    box = [int(v) for v in idc_utils.rand_bbox(real.size(), lam)]
    torch.manual_seed(6)
    perm = torch.randperm(B).tolist()
    return {"lam": lam, "perm": perm, "centre": [row, col], "box": box, "loss": float(loss),
            "weights_after_step": {n: stats(p) for n, p in model.named_parameters()}}


AUG_B, AUG_C, AUG_H = 6, 3, 32  # a CIFAR-shaped batch: saturation needs colour channels


def augmentations():
    """misc/augment.py's DiffAug as condense.py builds it for CIFAR: the matching augmentation
    (strategy color_crop_cutout, batch=True: one draw for the whole real + synthetic batch) and the
    network-update one (color_crop, cutout removed under mixup_net cut; batch=False: per sample).
    Input torch.manual_seed(3); torch.randn(6, 3, 32, 32). The draws are replayed afterwards by
    repeating the calls DiffAug makes on a freshly seeded generator (numpy 7 for the batch draw,
    torch 8 for the per-sample one), so ours can apply the same numbers."""
    from misc.augment import DiffAug  # noqa: E402
    torch.manual_seed(3)
    x = torch.randn(AUG_B, AUG_C, AUG_H, AUG_H)
    shift = int(AUG_H * 0.125 + 0.5)
    cut = int(AUG_H * 0.5 + 0.5)
    span = AUG_H + (1 - cut % 2)

    np.random.seed(7)
    matched = DiffAug(strategy="color_crop_cutout", batch=True)(x.clone())
    np.random.seed(7)
    bright, sat, contrast = np.random.uniform(), np.random.uniform(), np.random.uniform()
    np.random.randint(1)  # the single geometric op's choice (one listed: crop)
    tx, ty = np.random.randint(-shift, shift + 1), np.random.randint(-shift, shift + 1)
    ox, oy = np.random.randint(0, span), np.random.randint(0, span)

    np.random.seed(9)
    torch.manual_seed(8)
    per_sample = DiffAug(strategy="color_crop", batch=False)(x.clone())
    torch.manual_seed(8)
    draws = {"brightness": torch.rand(AUG_B, 1, 1, 1), "saturation": torch.rand(AUG_B, 1, 1, 1),
             "contrast": torch.rand(AUG_B, 1, 1, 1)}
    ptx = torch.randint(-shift, shift + 1, size=[AUG_B, 1, 1])
    pty = torch.randint(-shift, shift + 1, size=[AUG_B, 1, 1])
    return {
        "matching": {"brightness": bright, "saturation": sat, "contrast": contrast, "crop": [int(tx), int(ty)],
                     "cutout_offset": [int(ox), int(oy)], "images": stats(matched),
                     "per_image_sums": matched.double().flatten(1).sum(1).tolist()},
        "network": {**{k: v.flatten().tolist() for k, v in draws.items()},
                    "crop": [ptx.flatten().tolist(), pty.flatten().tolist()], "images": stats(per_sample),
                    "per_image_sums": per_sample.double().flatten(1).sum(1).tolist()},
    }


def init_weights():
    return {name: stats(p) for name, p in net().named_parameters()}




def probes():
    return {"init_weights": init_weights(), "decode": decode(), "match_l1": match_step("l1"),
            "match_mse": match_step("mse"), "network_step": network_step(),
            "network_step_cutmix": network_step_cutmix(), "augmentation": augmentations()}


out = {
    "provenance": {"repository": "snu-mllab/Efficient-Dataset-Condensation", "commit": COMMIT,
                   "files": "condense.py (Synthesizer.decode_zoom, matchloss, dist), models/convnet.py (ConvNet), "
                            "train.py (train_epoch), misc/augment.py (DiffAug)",
                   "patches": "sed: device='cuda' -> 'cpu', .cuda() -> .cpu() in every .py file; np.int( -> int( in misc/utils.py; an empty "
                              "efficientnet_pytorch module (an unused import of train.py)",
                   "torch": torch.__version__, "threads": 1,
                   "cpu": cpu_name(),
                   "command": "IDC_REPO=../authors/IDC python experiments/parity/idc_probe.py tests/parity/idc.json"},
    "shapes": {"classes": K, "channels": C, "size": H, "ipc": IPC, "batch_real": B, "factor": FACTOR,
               "class": CLS, "weights_seed": 0, "real_seed": 1, "syn_seed": 2,
               "real": "torch.randn(B, C, H, H)", "syn": "torch.rand(IPC, C, H, H)",
               "augmentation_input": f"torch.manual_seed(3); torch.randn({AUG_B}, {AUG_C}, {AUG_H}, {AUG_H})"},
    "float32": probes(),
    "float64": in_float64(probes),
}
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(json.dumps({k: out["float32"][k] for k in ("match_l1", "match_mse")}, indent=0)[:1500])
