"""Compare base vs +DREAM accuracy curves from the records under a results folder:

    python experiments/dream_efficiency/compare.py results-dream/dc

Prints each arm's per-seed curves, the mean curve, and the first checkpoint at which the +DREAM arm
reaches the base arm's final accuracy (bench.diagnostics.efficiency) with the ratio."""
import json
import sys
from collections import defaultdict
from pathlib import Path

from bench.dream.diagnostics import efficiency, mean_curve

root = Path(sys.argv[1])
arms = defaultdict(list)
for p in sorted(root.glob("runs/*/record.json")):
    r = json.loads(p.read_text())
    arms[r["config"]["label"]].append(r)
for label, recs in sorted(arms.items()):
    print(f"== {label}: seeds {[r['seed'] for r in recs]}")
    for r in recs:
        ph = r["timings"]["phases"]
        share = ph.get("clustering", 0.0) / r["timings"]["distill_s"]
        print(f"  seed {r['seed']}: curve " + " ".join(f"{p['iteration']}:{p['accuracy']:.2f}" for p in r["metrics"]["curve"])
              + f" | final {r['accuracy']['mean']:.2f} | distill {r['timings']['distill_s']:.0f}s clustering share {share:.3f}"
              + (f" | dream {json.dumps({k: r['metrics']['dream']['sampler'][k] for k in ('reclusterings','duplicates','empty_clusters','empty_after_reseed','returned_batch')})}" if 'sampler' in r['metrics'].get('dream', {}) else ""))
    print("  mean curve " + " ".join(f"{it}:{a:.2f}" for it, a in mean_curve(recs)))
labels = sorted(arms)
base = [l for l in labels if "+" not in l]
for b in base:
    for d in labels:
        if d.startswith(b + "+"):
            e = efficiency(mean_curve(arms[b]), mean_curve(arms[d]))
            print(f"{d} vs {b}: {e}")
            # per seed
            for rb in arms[b]:
                for rd in arms[d]:
                    if rb["seed"] == rd["seed"]:
                        print(f"   seed {rb['seed']}: {efficiency(mean_curve([rb]), mean_curve([rd]))}")
