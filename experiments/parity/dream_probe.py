"""Golden selections from the authors' DREAM code (lyq312318224/DREAM, new_strategy.py), run outside
DREAM-bench on an export of their repository. Writes JSON to argv[1].

Inputs fixed on both sides: features torch.manual_seed(0); torch.randn(M, D) (standing in for a
class's embeddings: the strategy's net.embed is the identity here), and the k-means starting
centroids: the rows of a seeded permutation, F[randperm(M, generator=Generator().manual_seed(S))[:k]].

Patches (CPU only, maths untouched): the export's device='cuda' / .cuda() made CPU (sed, as for IDC);
in this script, new_strategy's KMeans is given those starting centroids instead of drawing its own
(fast-pytorch-kmeans' fit_predict(X, centroids=...)), which is what fixes "the same centres"."""
import json
import os
import subprocess
import sys
import types

AUTHORS = os.environ.get("DREAM_REPO", "../authors/DREAM")
sys.path.insert(0, AUTHORS)
import fast_pytorch_kmeans  # noqa: E402
import new_strategy  # noqa: E402
import torch  # noqa: E402

COMMIT = os.environ.get("DREAM_COMMIT") or subprocess.run(["git", "-C", AUTHORS, "rev-parse", "HEAD"],
                                                         capture_output=True, text=True).stdout.strip()
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


out = {
    "provenance": {"repository": "lyq312318224/DREAM", "commit": COMMIT,
                   "files": "new_strategy.py (NEW_Strategy.query, query_match, euclidean_dist)",
                   "patches": "sed: device='cuda' -> 'cpu', .cuda() -> .cpu(); KMeans started from the given centroids",
                   "fast_pytorch_kmeans": getattr(fast_pytorch_kmeans, "__version__", "unknown"),
                   "torch": torch.__version__, "threads": 1,
                   "command": "DREAM_REPO=../authors/DREAM python experiments/parity/dream_probe.py tests/parity/dream.json"},
    "inputs": {"features": "torch.manual_seed(0); torch.randn(M, D)", "M": M, "D": D, "start_seed": SEED,
               "start": "F[torch.randperm(M, generator=torch.Generator().manual_seed(start_seed))[:k]]"},
    "selections": selections(),
}
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(json.dumps(out["selections"]))
