"""DSA's augmentation ops under the same parameters: the authors' rand_* functions
(VICO-UoE/DatasetCondensation utils.py) on fixed images, each with a fixed seed, and the uniforms in
our convention (bench.nets.augment: u in [0, 1) per image) that reproduce the authors' draw. Writes
JSON to argv[1]; tests/parity/test_dsa_parity.py applies our ops to the same images and uniforms.

  VICO_REPO=../authors/DatasetCondensation python experiments/parity/dsa_probe.py tests/parity/dsa.json

The uniforms are recovered by replaying the authors' draws: each op seeds torch with its seed (and
seed + 1 for the second axis) exactly as their set_seed_DiffAug does, then draws the same calls;
integer draws (crop, cutout) map to the middle of their bucket in our floor(u * span)."""
import json
import os
import sys

AUTHORS = os.environ.get("VICO_REPO", "../authors/DatasetCondensation")
sys.path.insert(0, AUTHORS)
import torch  # noqa: E402
import utils  # noqa: E402
from probe_common import authors_commit, bucket_uniform, cpu_name, stats  # noqa: E402 (beside this script)

COMMIT = authors_commit("VICO_COMMIT", AUTHORS)
torch.set_num_threads(1)
B, C, H = 4, 3, 32




def images():
    torch.manual_seed(3)
    return torch.rand(B, C, H, H)


def uniforms(op, seed, p, x):
    """Our u for the authors' draw of `op`: at `seed` (the second axis at seed + 1, as their
    set_seed_DiffAug re-seeds), or with seed None continuing the current stream (their seed=-1,
    what evaluation and network training use)."""
    def draw(k, fn):
        if seed is not None:
            torch.manual_seed(seed + k)
        return fn()

    if op == "scale":
        return torch.stack([draw(0, lambda: torch.rand(B)), draw(1, lambda: torch.rand(B))], 1)
    if op in ("rotate",):
        return draw(0, lambda: torch.rand(B)).view(B, 1)
    if op in ("flip", "brightness", "saturation", "contrast"):
        return draw(0, lambda: torch.rand(B, 1, 1, 1, dtype=x.dtype)).view(B, 1)
    if op in ("crop", "cutout"):
        def axis():
            return bucket_uniform(op, H, p, lambda low, high: torch.randint(low, high, size=[B, 1, 1])).view(B)
        return torch.stack([draw(k, axis) for k in (0, 1)], 1)
    raise ValueError(op)


STRATEGY = "color_crop_cutout_flip_scale_rotate"  # VICO's DSA strategy for every dataset


def calls():
    """Whole per-sample calls as their evaluation makes them: DiffAugment(x, STRATEGY, seed=-1,
    param) after torch.manual_seed(s): one category drawn (torch.randint over the strategy's ops),
    then its ops' per-sample draws from the same stream; the replay gives the category and our u."""
    x, out = images(), {}
    for seed in range(8):
        p = utils.ParamDiffAug()
        torch.manual_seed(seed)
        result = utils.DiffAugment(x.clone(), STRATEGY, seed=-1, param=p)
        torch.manual_seed(seed)
        ops = STRATEGY.split("_")
        category = ops[torch.randint(0, len(ops), size=(1,)).item()]
        subs = ("brightness", "saturation", "contrast") if category == "color" else (category,)
        out[str(seed)] = {"category": category, "u": {op: uniforms(op, None, p, x).tolist() for op in subs},
                          "out": stats(result)}
    return out


def probe():
    x = images()
    out = {}
    for k, op in enumerate(("scale", "rotate", "flip", "brightness", "saturation", "contrast", "crop", "cutout")):
        p = utils.ParamDiffAug()
        p.Siamese, p.latestseed = False, 100 + 10 * k
        u = uniforms(op, p.latestseed, p, x)
        result = getattr(utils, f"rand_{op}")(x.clone(), p)
        out[op] = {"seed": 100 + 10 * k, "u": u.tolist(), "out": stats(result)}
    return out


out = {
    "provenance": {"repository": "VICO-UoE/DatasetCondensation", "commit": COMMIT,
                   "files": "utils.py (ParamDiffAug, DiffAugment, rand_scale, rand_rotate, rand_flip, rand_brightness, "
                            "rand_saturation, rand_contrast, rand_crop, rand_cutout)",
                   "patches": "none needed (Siamese off: the in-place row copies, which the run-level export patches "
                              "with .clone(), are not reached)",
                   "torch": torch.__version__, "threads": 1,
                   "cpu": cpu_name(),
                   "command": "VICO_REPO=../authors/DatasetCondensation python experiments/parity/dsa_probe.py "
                              "tests/parity/dsa.json"},
    "inputs": {"images": "torch.manual_seed(3); torch.rand(4, 3, 32, 32)"},
    "ops": probe(),
    "calls": {"strategy": STRATEGY, "how": "torch.manual_seed(seed); utils.DiffAugment(x, strategy, seed=-1, param)",
              "by_seed": calls()},
}
json.dump(out, open(sys.argv[1], "w"), indent=1)
print({op: round(v["out"]["norm"], 4) for op, v in out["ops"].items()})
print({seed: v["category"] for seed, v in out["calls"]["by_seed"].items()})
