"""DSA scale and rotate under the same parameters: the authors' rand_scale / rand_rotate against ours
(VICO_REPO=../authors/DatasetCondensation python experiments/parity/dsa_probe.py)."""
import os
import sys

sys.path.insert(0, os.environ.get("VICO_REPO", "../authors/DatasetCondensation"))
import math

import torch
import utils

from bench.nets.augment import DiffAugment

torch.set_num_threads(1)
torch.manual_seed(3); x = torch.rand(4, 3, 32, 32)
p = utils.ParamDiffAug(); p.Siamese = False; p.latestseed = 7
ours = DiffAugment("scale_rotate", "dsa")
r = p.ratio_scale
torch.manual_seed(7); sx = torch.rand(4) * (r - 1/r) + 1/r; torch.manual_seed(8); sy = torch.rand(4) * (r - 1/r) + 1/r
t = utils.rand_scale(x, p)
u = torch.stack([(sx - 1/r) / (r - 1/r), (sy - 1/r) / (r - 1/r)], 1)
o = ours._scale(x, u)
print("scale max|diff|", float((t - o).abs().max()))
import torch.nn.functional as F

th = torch.zeros(4, 2, 3); th[:, 0, 0] = sx; th[:, 1, 1] = sy
o2 = F.grid_sample(x, F.affine_grid(th, list(x.shape), align_corners=False), align_corners=False)
print("scale with align_corners=False max|diff|", float((t - o2).abs().max()))
p.latestseed = 9
torch.manual_seed(9); ang = (torch.rand(4) - 0.5) * 2 * p.ratio_rotate / 180 * math.pi
t = utils.rand_rotate(x, p)
o = ours._rotate(x, (ang / (2 * p.ratio_rotate / 180 * math.pi) + 0.5).view(-1, 1))
o_neg = ours._rotate(x, (-ang / (2 * p.ratio_rotate / 180 * math.pi) + 0.5).view(-1, 1))
print("rotate same draw max|diff|", float((t - o).abs().max()), " negated angle:", float((t - o_neg).abs().max()))
