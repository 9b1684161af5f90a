"""Golden selections and cluster initialisation from the authors' DREAM code (lyq312318224/DREAM:
new_strategy.py, and condense.py's ``args.init == 'mix'`` block), run outside DREAM-bench on an export
of their repository. Writes JSON to argv[1].

Inputs fixed on both sides: features torch.manual_seed(0); torch.randn(M, D) (standing in for a
class's embeddings: the strategy's net.embed is the identity here), and the k-means starting
centroids: the rows of a seeded permutation, F[randperm(M, generator=Generator().manual_seed(S))[:k]].

Patches (CPU only, maths untouched): the export's device='cuda' / .cuda() made CPU (sed, as for IDC);
in this script, new_strategy's KMeans is given those starting centroids instead of drawing its own
(fast-pytorch-kmeans' fit_predict(X, centroids=...)), which is what fixes "the same centres".

The cluster initialisation is inline in the authors' condense() (no function to call): the probe reads
the ``elif args.init == 'mix':`` block from their condense.py at run time and executes it, unchanged,
on a stand-in synthetic set (size, factor, ipc, data) and per-class images (img_class), with
``f2_init`` 'kmean' and a model whose ``embed`` flattens the image (the features are the pixels)."""
import json
import os
import re
import sys
import types

AUTHORS = os.environ.get("DREAM_REPO", "../authors/DREAM")
sys.path.insert(0, AUTHORS)
import fast_pytorch_kmeans  # noqa: E402
import new_strategy  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from probe_common import authors_commit, stats  # noqa: E402 (beside this script)

COMMIT = authors_commit("DREAM_COMMIT", AUTHORS)
torch.set_num_threads(1)
M, D, SEED = 60, 16, 7


def features():
    torch.manual_seed(0)
    return torch.randn(M, D)


def start(feats, k):
    gen = torch.Generator().manual_seed(SEED)
    return feats[torch.randperm(len(feats), generator=gen)[:k]].clone()


class GivenStart(fast_pytorch_kmeans.KMeans):
    """KMeans whose starting centroids are the fixed ones (the only change)."""

    def fit_predict(self, X, centroids=None):
        return super().fit_predict(X, centroids=start(X, self.n_clusters))


new_strategy.KMeans = GivenStart


def strategy(feats):
    return new_strategy.NEW_Strategy(feats, types.SimpleNamespace(embed=lambda x: x))


def selections():
    feats = features()
    out = {}
    for k in (4, 8, 12):  # query(n): n clusters, the sample nearest each centre (DREAM's real batch)
        out[f"query_{k}"] = strategy(feats).query(k).tolist()
    for k, sub in ((4, 3), (6, 2)):  # query_match(n, sub): n // sub clusters, the sub nearest each
        out[f"query_match_{k * sub}_{sub}"] = strategy(feats).query_match(k * sub, sub).tolist()
    return out


def positional(t) -> float:
    """sum_i x_i * i / (n - 1) over the flattened tensor: unlike sum and norm, it moves when tiles swap."""
    t = t.detach().double().flatten()
    return float((t * torch.linspace(0, 1, t.numel(), dtype=torch.float64)).sum())


def mix_init_block() -> str:
    """The authors' cluster-initialisation block, read from their condense.py and dedented."""
    src = open(os.path.join(AUTHORS, "condense.py")).read()
    body = re.search(r"\n    elif args\.init == 'mix':\n(.*?)\n    elif args\.init == 'noise':", src, re.S).group(1)
    return "\n".join(line[8:] for line in body.splitlines())


INIT_CASES = [dict(ipc=2, factor=2, size=28), dict(ipc=1, factor=3, size=28), dict(ipc=2, factor=2, size=32)]


def class_images(case, c):
    """ipc * f^2 groups of 5 noisy copies of a random image: clusters of several members, so no centre
    is the midpoint of two samples (an exact tie, broken by rounding, differently on each side)."""
    k = case["ipc"] * case["factor"] ** 2
    torch.manual_seed(100 + c)
    prototypes = torch.rand(k, 1, case["size"], case["size"])
    return (prototypes.repeat_interleave(5, 0) + 0.1 * torch.randn(5 * k, 1, case["size"], case["size"])).clamp(0, 1)


def cluster_init():
    block, out = mix_init_block(), {}

    class Recording(new_strategy.NEW_Strategy):
        """Observes each class's picks (what query returns), changing nothing."""
        def query(self, n):
            picks.append(super().query(n).tolist())
            return torch.tensor(picks[-1])

    for case in INIT_CASES:
        picks = []
        n, size = case["ipc"] * 3, (case["size"], case["size"])
        synset = types.SimpleNamespace(nclass=3, ipc=case["ipc"], factor=case["factor"], size=size, device="cpu",
                                       data=types.SimpleNamespace(data=torch.zeros(n, 1, *size)))
        namespace = {"synset": synset, "img_class": [class_images(case, c) for c in range(3)], "F": F,
                     "args": types.SimpleNamespace(f2_init="kmean"), "NEW_Strategy": Recording,
                     "model": types.SimpleNamespace(embed=lambda x: x.flatten(1)), "torch": torch}
        exec(block, namespace)  # the authors' code, as it stands in their condense.py
        out[f"ipc{case['ipc']}_factor{case['factor']}_size{case['size']}"] = {**case, "picks": picks,
                                                                              "images": stats(synset.data.data),
                                                                              "positional": positional(synset.data.data)}
    return out


out = {
    "provenance": {"repository": "lyq312318224/DREAM", "commit": COMMIT,
                   "files": "new_strategy.py (NEW_Strategy.query, query_match, euclidean_dist); condense.py "
                             "(condense(), the args.init == 'mix' block, executed as read from the file)",
                   "patches": "sed: device='cuda' -> 'cpu', .cuda() -> .cpu(); KMeans started from the given centroids",
                   "fast_pytorch_kmeans": getattr(fast_pytorch_kmeans, "__version__", "unknown"),
                   "torch": torch.__version__, "threads": 1,
                   "command": "DREAM_REPO=../authors/DREAM python experiments/parity/dream_probe.py tests/parity/dream.json"},
    "inputs": {"features": "torch.manual_seed(0); torch.randn(M, D)", "M": M, "D": D, "start_seed": SEED,
               "start": "F[torch.randperm(M, generator=torch.Generator().manual_seed(start_seed))[:k]]"},
    "selections": selections(),
    "cluster_init": {"inputs": "class c, k = ipc * factor^2: torch.manual_seed(100 + c); P = torch.rand(k, 1, size, "
                               "size); (P.repeat_interleave(5, 0) + 0.1 * torch.randn(5k, 1, size, size)).clamp(0, 1); "
                               "features = the flattened images; k-means started as above",
                     "cases": cluster_init()},
}
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(json.dumps(out["selections"]))
print({k: round(v["images"]["norm"], 4) for k, v in out["cluster_init"]["cases"].items()})
