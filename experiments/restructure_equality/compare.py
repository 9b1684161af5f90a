"""Compare two `bench verify` stores cell by cell: same accuracies and same synthetic-set bytes.

    python experiments/restructure_equality/compare.py results-before results-after

Records are matched by (label, dataset, IPC, seed), not by run id (a restructure may change the
resolved config's shape, and with it the ids). Prints one row per run and exits 1 on a difference."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch


def index(out: Path) -> dict:
    runs = {}
    for path in sorted(out.glob("runs/*/record.json")):
        rec = json.loads(path.read_text())
        cfg = rec["config"]
        key = (cfg["label"], cfg["dataset"], cfg["ipc"], rec["seed"])
        synset = torch.load(path.parent / "synset.pt", map_location="cpu", weights_only=False)
        digest = hashlib.sha256(synset["images"].contiguous().numpy().tobytes()).hexdigest()[:16]
        # accuracies (every network's last epoch and its test checks); not the seconds they took
        accs = {m: {"last": v["last"], "checks": v.get("checks")} for m, v in rec["accuracy"]["per_model"].items()}
        runs[key] = (accs, digest, rec["run_id"])
    return runs


def main(before: str, after: str) -> int:
    a, b = index(Path(before)), index(Path(after))
    differ = 0
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            print(f"{key}: only in {'before' if key in a else 'after'}")
            differ += 1
            continue
        (acc_a, hash_a, id_a), (acc_b, hash_b, id_b) = a[key], b[key]
        same = acc_a == acc_b and hash_a == hash_b
        differ += not same
        lasts = {m: v["last"] for m, v in acc_a.items()}
        print(f"{'same' if same else 'DIFFERENT':9} {key[0]:12} {key[1]:13} ipc={key[2]} seed={key[3]} "
              f"acc={lasts} synset sha256[:16]={hash_a}{'' if hash_a == hash_b else ' vs ' + hash_b} "
              f"run id {id_a} -> {id_b}")
    print(f"{len(set(a) | set(b)) - differ} of {len(set(a) | set(b))} runs identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
