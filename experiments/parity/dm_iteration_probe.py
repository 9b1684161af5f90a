"""One whole DM iteration on CIFAR-shaped inputs, from the authors' code (VICO-UoE/DatasetCondensation,
run outside DREAM-bench): main_DM.py's per-class loop with its Siamese DSA (``DiffAugment(img_real,
strategy, seed=seed)`` then ``DiffAugment(img_syn, strategy, seed=seed)``, which re-seeds torch at
every draw and copies image 0's parameters to the whole batch), the embeddings' mean-matching loss
summed over classes, and one SGD step on the images (lr 1, momentum 0.5). Writes JSON to argv[1];
tests/parity/test_dm_iteration_parity.py computes ours from the same inputs and the same draws.

  VICO_REPO=<patched VICO export> python experiments/parity/dm_iteration_probe.py tests/parity/dm_iteration.json

Why: vico.json's DM probe is MNIST-shaped and has no augmentation, and dsa.json's calls have the
Siamese mode off (``seed=-1``), so the path DM and DSA take on CIFAR (three channels, where the
saturation op does something, and ``flip`` in the strategy) was not compared with theirs as a whole.

Inputs: weights = torch.manual_seed(0) then their ConvNet(3, K, 128, 3, relu, instancenorm,
avgpooling, (32, 32)); real = torch.manual_seed(1); torch.randn(K, B, 3, 32, 32); synthetic =
torch.manual_seed(2); torch.randn(K * IPC, 3, 32, 32). Class c's wall-clock seed is replaced by a
fixed one, chosen (below) so that the six classes draw the strategy's six categories, one each.
Their Siamese row copies need the ``.clone()`` patch on current torch (docs/parity.md); float32 only:
their scale and rotate build the affine matrix in float32 whatever the input's dtype."""
import json
import os
import sys

AUTHORS = os.environ.get("VICO_REPO", "../authors/DatasetCondensation")
sys.path.insert(0, AUTHORS)
import networks  # noqa: E402
import torch  # noqa: E402
import utils  # noqa: E402
from probe_common import authors_commit, bucket_uniform, cpu_name, stats  # noqa: E402 (beside this script)

COMMIT = authors_commit("VICO_COMMIT", AUTHORS)
torch.set_num_threads(1)
STRATEGY = "color_crop_cutout_flip_scale_rotate"  # VICO's default, main_DM.py on CIFAR10
CATEGORIES = STRATEGY.split("_")
K, B, IPC, C, H = len(CATEGORIES), 64, 2, 3, 32
SUB_OPS = {"color": ("brightness", "saturation", "contrast"), "crop": ("crop",), "cutout": ("cutout",),
           "flip": ("flip",), "scale": ("scale",), "rotate": ("rotate",)}


def category_of(seed: int) -> str:
    """What their DiffAugment (aug_mode 'S') picks at a given seed: set_seed_DiffAug, then randint."""
    torch.manual_seed(seed)
    return CATEGORIES[torch.randint(0, len(CATEGORIES), size=(1,)).item()]


def seed_for(c: int) -> int:
    """Class c's seed: the first from 1000 * (c + 1) whose category is CATEGORIES[c] (for flip, one
    that does flip: their randf at seed + 1 below prob_flip)."""
    seed = 1000 * (c + 1)
    while category_of(seed) != CATEGORIES[c] or (CATEGORIES[c] == "flip" and first_uniform(seed + 1) >= 0.5):
        seed += 1
    return seed


def first_uniform(seed: int) -> float:
    torch.manual_seed(seed)
    return float(torch.rand(1))


def shared_uniforms(category: str, seed: int, param) -> dict:
    """Image 0's draws of each op in our convention (u in [0, 1), one row: a shared draw). Their
    set_seed_DiffAug re-seeds before every draw with seed + 1, seed + 2, ... in the order the ops
    draw: colour's three ops one seed each; crop, cutout and scale one seed per axis."""
    u, nxt = {}, seed + 1
    for op in SUB_OPS[category]:
        axes = 2 if op in ("crop", "cutout", "scale") else 1
        row = []
        for _ in range(axes):
            torch.manual_seed(nxt)
            nxt += 1
            if op in ("crop", "cutout"):
                # a Python int, so the bucket's middle is computed in double precision
                row.append(bucket_uniform(op, H, param, lambda low, high: int(torch.randint(low, high, size=[1, 1, 1]))))
            else:
                row.append(float(torch.rand(1)))
        u[op] = [row]
    return u


def iteration() -> dict:
    torch.manual_seed(0)
    net = networks.ConvNet(C, K, 128, 3, "relu", "instancenorm", "avgpooling", (H, H))
    torch.manual_seed(1)
    real = torch.randn(K, B, C, H, H)
    torch.manual_seed(2)
    image_syn = torch.randn(K * IPC, C, H, H).requires_grad_(True)
    optimizer_img = torch.optim.SGD([image_syn], lr=1.0, momentum=0.5)
    param = utils.ParamDiffAug()
    net.train()
    for p in list(net.parameters()):
        p.requires_grad = False
    embed = net.embed
    classes = []
    loss = torch.tensor(0.0)
    for c in range(K):  # main_DM.py's loop, the seed fixed instead of int(time.time() * 1000) % 100000
        seed = seed_for(c)
        img_real = real[c]
        img_syn = image_syn[c * IPC:(c + 1) * IPC].reshape((IPC, C, H, H))
        img_real = utils.DiffAugment(img_real, STRATEGY, seed=seed, param=param)
        img_syn = utils.DiffAugment(img_syn, STRATEGY, seed=seed, param=param)
        output_real = embed(img_real).detach()
        output_syn = embed(img_syn)
        term = torch.sum((torch.mean(output_real, dim=0) - torch.mean(output_syn, dim=0)) ** 2)
        loss += term
        classes.append({"seed": seed, "category": category_of(seed), "u": shared_uniforms(category_of(seed), seed, param),
                        "real_augmented": stats(img_real), "syn_augmented": stats(img_syn), "loss": float(term)})
    optimizer_img.zero_grad()
    loss.backward()
    grad = image_syn.grad.clone()
    optimizer_img.step()
    return {"classes": classes, "loss": float(loss), "grad": stats(grad), "images_after_step": stats(image_syn)}


out = {
    "provenance": {"repository": "VICO-UoE/DatasetCondensation", "commit": COMMIT,
                   "files": "main_DM.py (the per-class loop of one iteration), utils.py (ParamDiffAug, DiffAugment, "
                            "set_seed_DiffAug, rand_*), networks.py (ConvNet.embed)",
                   "patches": "utils.py: the Siamese row copies x[:] = x[0] -> x[:] = x[0].clone() (ten places; "
                              "current torch refuses the overlapping in-place copy); networks.py: out.view(out.size(0), -1) -> "
                              "out.reshape(...) (six places, from the run-level export; the same values wherever .view runs); the maths unchanged",
                   "torch": torch.__version__, "threads": 1, "cpu": cpu_name(),
                   "command": "VICO_REPO=<patched VICO export> python experiments/parity/dm_iteration_probe.py "
                              "tests/parity/dm_iteration.json"},
    "shapes": {"channels": C, "size": H, "classes": K, "ipc": IPC, "batch_real": B, "weights_seed": 0,
               "real_seed": 1, "syn_seed": 2, "real": "torch.randn(K, B, C, H, H)", "syn": "torch.randn(K*IPC, C, H, H)",
               "strategy": STRATEGY},
    "iteration": iteration(),
}
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(json.dumps({k: out["iteration"][k] for k in ("loss", "grad")}))
print([(c["category"], c["seed"], round(c["loss"], 4)) for c in out["iteration"]["classes"]])
