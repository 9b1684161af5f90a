"""``bench experts``: the expert trajectories a selection of MTT/TESLA runs reads, trained ahead of
the runs (in this process, in local subprocesses, or as a SLURM job array, one expert a task), or
listed with ``--dry-run``. The runs themselves train whatever is still missing when they start."""

from __future__ import annotations

import argparse

from bench.cli.common import add_run_selection, command, configs_from_args, prepare
from bench.core.errors import BenchError
from bench.grid.expert_jobs import ExpertTask, launch_experts
from bench.run.experts import ExpertStore


def _args(p: argparse.ArgumentParser) -> None:
    add_run_selection(p)
    p.set_defaults(ipc="1")
    p.add_argument("--executor", choices=("debug", "local", "slurm"), default="debug",
                   help="debug: in this process (default); local: subprocesses; slurm: one job array, one expert a task")
    p.add_argument("--profile", help="cluster profile (see bench run --help)")
    p.add_argument("--max-parallel", type=int, help="local: processes at once; slurm: array tasks at once")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    p.add_argument("--dry-run", action="store_true", help="list the experts each selection needs and how many exist")


@command("experts", "train (or list) the expert trajectories MTT/TESLA runs need", _args)
def cmd_experts(args) -> int:
    resolved = prepare(configs_from_args(args), args.data_root, args.out)
    needs = {}
    for r in resolved:
        spec_of = getattr(r.method_cls, "expert_spec", None)
        if spec_of is None:
            raise BenchError(f"method {r.config.method!r} uses no expert trajectories (mtt and tesla do)")
        spec, count = spec_of(r)
        needs[spec] = (max(count, needs.get(spec, (0, None))[0]), r.data)
    tasks = []
    for spec, (count, data) in needs.items():
        store = ExpertStore(args.out, spec)
        missing = store.missing(count)
        print(f"{spec.key}: {count - len(missing)}/{count} experts stored ({spec.epochs} epochs, lr {spec.lr:g}, "
              f"batch {spec.batch}) in {store.folder}", flush=True)
        tasks += [ExpertTask(spec, k, data, str(args.out), None if args.data_root is None else str(args.data_root),
                             args.device) for k in missing]
    if args.dry_run or not tasks:
        return 0
    return launch_experts(tasks, args.out, args.executor, args.profile, args.max_parallel)
