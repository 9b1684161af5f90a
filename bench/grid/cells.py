"""Spec + scale preset (+ CLI restrictions) -> the grid's cells, each a frozen ``RunConfig``.

A cell is one (method, dataset, IPC, distillation model, parameter set, seed). Its run id is the
hash of the resolved config, so expanding a spec twice finds the same runs: a grid is idempotent
and resumable, and finished cells are never rerun (the runner skips runs that have a record).

Cells whose method, sampler, initialiser or dataset is not registered yet are kept with a ``note``
saying so: ``bench run`` skips them with one line, tables and figures show them as missing.

Scale presets: ``paper`` uses the spec's grid as it is. ``reduced`` and ``smoke`` apply the spec's
``[scales.<name>]`` overrides (seeds, IPCs, class subsets, parameter and evaluation overrides) on
top of the preset's own budgets (methods pick their iteration counts from the scale name); without
overrides ``smoke`` runs seeds 0-1 and ``reduced`` seeds 0-2.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.core.errors import BenchError
from bench.data.datasets import DATASETS, DataOptions
from bench.dream.compose import INITIALISERS, SAMPLERS
from bench.grid.specs import PLANNED, MethodSpec, ScaleOverride, Spec
from bench.run.config import SCALE_PRESETS, RunConfig, parse_seeds, resolve
from bench.run.runner import execute, validate
from bench.run.staleness import StaleIndex
from bench.run.store import RunStore
from methods import METHODS

DEFAULT_SEEDS = {"smoke": "0-1", "reduced": "0-2"}


@dataclass(frozen=True)
class Cell:
    spec_id: str
    method: MethodSpec
    dataset: str
    ipc: int
    model: str
    param_set: tuple[tuple[str, Any], ...]
    seed: int
    scale: str
    eval_models: tuple[str, ...]
    config: RunConfig | None  # None when it cannot be built (see note)
    note: str = ""  # why the cell cannot run yet ("method 'idc' is not registered yet")
    run_id: str = ""
    cell_id: str = ""  # the cell without its seed: what a table cell aggregates over
    label: str = ""

    @property
    def runnable(self) -> bool:
        return self.config is not None and not self.note

    def param(self, name: str):
        return dict(self.param_set).get(name)

    def describe(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in self.param_set)
        return (f"{self.method.key} {self.dataset} ipc={self.ipc} model={self.model}"
                f"{' ' + params if params else ''} seed={self.seed}")


def _merge(*pair_lists) -> tuple[tuple[str, Any], ...]:
    merged: dict[str, Any] = {}
    for pairs in pair_lists:
        merged.update(dict(pairs))
    return tuple(sorted(merged.items()))


def scale_override(spec: Spec, scale: str) -> ScaleOverride:
    SCALE_PRESETS.get(scale)
    return spec.scales.get(scale, ScaleOverride())


def data_options(spec: Spec, scale: str, classes: int | None = None, max_train: int | None = None,
                 max_test: int | None = None) -> DataOptions | None:
    """The spec's per-scale data subset (and the CLI's) on top of the scale preset's; None: the preset's."""
    so = scale_override(spec, scale)
    base = SCALE_PRESETS.get(scale).data
    values = (classes or so.classes, max_train or so.max_train_per_class, max_test or so.max_test_per_class)
    if not any(values):
        return None
    return DataOptions(classes=values[0] or base.classes,
                       max_train_per_class=values[1] or base.max_train_per_class,
                       max_test_per_class=values[2] or base.max_test_per_class)


def method_note_for(m: MethodSpec) -> str:
    """Why a spec's method entry cannot be built yet ("" when it can): a name not registered yet."""
    if m.method not in METHODS:
        return f"method {m.method!r} is not registered yet"
    for kind, name, registry in (("sampler", m.sampler, SAMPLERS), ("initialiser", m.initialiser, INITIALISERS)):
        if name is not None and name not in registry:
            return f"{kind} {name!r} is not registered yet"
    return ""


def expand(spec: Spec, scale: str = "paper", *, datasets=None, ipcs=None, seeds: str | None = None,
           methods=None, models=None, params=(), eval=(), data: DataOptions | None = None,
           classes: int | None = None, max_train: int | None = None, max_test: int | None = None) -> list[Cell]:
    """Every cell of ``spec`` at ``scale``. ``datasets`` replaces the spec's datasets (e.g. ``digits``
    for a smoke run of a CIFAR table); ``ipcs``, ``methods`` (keys or method names) and ``models``
    restrict; ``params``/``eval`` are extra overrides applied to every cell."""
    so = scale_override(spec, scale)
    g = spec.grid
    dataset_list = list(datasets) if datasets else list(so.datasets or g.datasets)
    for d in dataset_list:
        if d not in DATASETS and d not in PLANNED["dataset"]:
            DATASETS.get(d)  # raises with the known datasets
    ipc_list = list(so.ipcs or g.ipcs)
    if ipcs:
        ipc_list = [i for i in ipc_list if i in set(ipcs)] or list(ipcs)
    seed_list = parse_seeds(seeds or so.seeds or DEFAULT_SEEDS.get(scale, g.seeds))
    model_list = list(so.models or g.models)
    if models:
        model_list = [m for m in model_list if m in set(models)] or list(models)
    eval_models = tuple(so.eval_models if so.eval_models is not None else g.eval_models)
    param_sets = so.param_sets or g.param_sets
    method_list = [m for m in g.methods if not m.reported]
    if methods:
        wanted = set(methods)
        method_list = [m for m in method_list if m.key in wanted or m.method in wanted]
        if not method_list:
            raise BenchError(f"{spec.id}: no method matches {sorted(wanted)}; its methods: "
                             f"{', '.join(f'{m.key} ({m.method})' for m in g.methods if not m.reported)}")
    if data is None:
        data = data_options(spec, scale, classes, max_train, max_test)

    evals = _merge(g.eval, so.eval, eval)
    task, task_options = task_of(spec, scale, dict(evals))
    cells: list[Cell] = []
    for m in method_list:
        method_note = method_note_for(m)
        for dataset in dataset_list:
            note = method_note or dataset_note_for(dataset, dict(task_options))
            for ipc in ipc_list:
                for model in model_list:
                    for pset in param_sets:
                        for seed in seed_list:
                            config = None if note else RunConfig(
                                method=m.method, dataset=dataset, ipc=ipc, seed=seed, model=model,
                                eval_models=eval_models, scale=scale, dream=m.dream, sampler=m.sampler,
                                initialiser=m.initialiser, params=_merge(g.params, m.params, pset, so.params, params),
                                eval=evals, data=data, task=task, task_options=task_options)
                            cells.append(_cell(spec, m, dataset, ipc, model, pset, seed, scale,
                                               eval_models or (model,), config, note))
    return cells


def _cell(spec, m, dataset, ipc, model, pset, seed, scale, eval_models, config, note) -> Cell:
    """A cell with its ids, or with the reason it cannot be configured."""
    run_id = cell_id = label = ""
    if config is not None:
        try:
            resolved = resolve(config)
            run_id, cell_id, label = resolved.run_id, resolved.cell_id, resolved.label
        except BenchError as exc:
            note, config = f"cannot be configured: {exc}", None
    return Cell(spec.id, m, dataset, ipc, model, pset, seed, scale, eval_models, config, note, run_id, cell_id, label)


def task_of(spec: Spec, scale: str, evals: dict) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """(task, its settings) of a spec's cells: continual-learning figures run the ``continual`` task
    with the spec's ``[continual]`` settings; epochs come from an evaluation override, else the
    spec's at paper scale, else the scale preset's (the task's default)."""
    if spec.continual is None:
        return "distill", ()
    opts = spec.continual
    options = {"steps": scale_override(spec, scale).steps or opts.steps, "protocol": opts.protocol,
               "eval_model": opts.eval_model, "kd_temperature": opts.kd_temperature, "kd_beta": opts.kd_beta}
    if "epochs" in evals:
        options["epochs"] = int(evals["epochs"])
    elif scale == "paper":
        options["epochs"] = opts.epochs
    if "num_models" in evals:
        options["num_models"] = int(evals["num_models"])
    return "continual", tuple(sorted(options.items()))


def dataset_note_for(dataset: str, task_options: dict) -> str:
    if dataset not in DATASETS:
        return f"dataset {dataset!r} is not registered yet"
    steps = task_options.get("steps")
    if steps and DATASETS.get(dataset).num_classes < steps:
        return f"dataset {dataset!r} has fewer classes than {steps} steps"
    return ""


def notes(cells: list[Cell]) -> list[str]:
    """One line per reason cells cannot run, with how many and which methods."""
    counts = Counter(c.note for c in cells if c.note)
    lines = []
    for note, n in counts.items():
        keys = sorted({c.method.key for c in cells if c.note == note})
        lines.append(f"skipping {n} cell(s) of {', '.join(keys)}: {note}")
    return lines


# ------------------------------------------------------------------------------------------ stored results
@dataclass
class Collected:
    """The stored records of one spec at one scale: what a table or a figure is drawn from."""

    spec: Spec
    scale: str
    datasets: list[str]
    cells: list[Cell]  # one per cell (its first seed); cell.cell_id keys ``records``
    records: dict[str, list[dict]]  # cell_id -> records of every seed found
    variants: dict[str, str]  # dataset -> data variant of its records ("" = the whole dataset)
    stale: dict[str, list[dict]] = field(default_factory=dict)  # cell_id -> records of an older config

    def records_of(self, cell: Cell) -> list[dict]:
        return sorted(self.records.get(cell.cell_id, []), key=lambda r: r["seed"]) if cell.cell_id else []

    @property
    def found(self) -> int:
        return sum(len(self.records_of(c)) for c in self.cells)

    def missing(self) -> list[tuple[Cell, str]]:
        """Cells without any record, with the reason (not registered, cannot be configured, stale,
        not run)."""
        return [(c, c.note or self.stale_note(c) or "not run yet") for c in self.cells if not self.records_of(c)]

    def stale_note(self, cell: Cell) -> str:
        old = self.stale.get(cell.cell_id) if cell.cell_id else None
        return f"stale: {len(old)} record(s) of an older config; rerun to replace" if old else ""


def _first_seed_only(spec: Spec, scale: str) -> str:
    so = scale_override(spec, scale)
    return str(parse_seeds(so.seeds or DEFAULT_SEEDS.get(scale, spec.grid.seeds))[0])


def collect(spec: Spec, out, scales=None, datasets=None, records: list[dict] | None = None,
            **expand_kwargs) -> list[Collected]:
    """Match stored records to the spec's cells by cell id (the resolved config without its seed), so
    every seed found counts, and presets and data variants never mix. Records of a cell made under an
    older config are kept apart as ``stale`` (bench/run/staleness.py). Scales: those asked for, else
    every scale with records of this spec (``paper`` with everything missing when there are none).
    Datasets: those asked for, else the ones with records at that scale (the spec's when none)."""
    expand_kwargs.pop("seeds", None)  # every seed found counts
    if records is None:
        records = RunStore(out).records()
    by_cell: dict[str, list[dict]] = {}
    stored_datasets: dict[str, list[str]] = {}
    for rec in records:
        by_cell.setdefault(rec.get("cell_id", ""), []).append(rec)
        cfg = rec.get("config", {})
        ds = stored_datasets.setdefault(cfg.get("scale", ""), [])
        if cfg.get("dataset") not in ds:
            ds.append(cfg.get("dataset"))
    stale_index = StaleIndex(records, ignore_seed=True)
    result = []
    for scale in scales or SCALE_NAMES_ORDER:
        so = scale_override(spec, scale)
        candidates = list(datasets) if datasets else list(dict.fromkeys(
            list(so.datasets or spec.grid.datasets) + [d for d in stored_datasets.get(scale, []) if d in DATASETS]))
        cells = expand(spec, scale, datasets=candidates, seeds=_first_seed_only(spec, scale), **expand_kwargs)
        hits = {c.cell_id: by_cell[c.cell_id] for c in cells if c.cell_id and c.cell_id in by_cell}
        stale = {c.cell_id: old for c in cells if c.runnable and c.cell_id not in hits
                 and (old := stale_index.stale_for(resolve(c.config)))}
        if not hits and not stale and not scales:
            continue
        shown = list(datasets) if datasets else [d for d in candidates if any(
            c.dataset == d and (c.cell_id in hits or c.cell_id in stale) for c in cells)] \
            or list(so.datasets or spec.grid.datasets)
        cells = [c for c in cells if c.dataset in shown]
        variants = {}
        for c in cells:
            for rec in hits.get(c.cell_id, []):
                variants.setdefault(c.dataset, rec.get("data_variant", ""))
        result.append(Collected(spec, scale, shown, cells, hits, variants, stale))
    if not result:
        cells = expand(spec, "paper", seeds=_first_seed_only(spec, "paper"), **expand_kwargs)
        result.append(Collected(spec, "paper", list(spec.grid.datasets), cells, {}, {}))
    return result


SCALE_NAMES_ORDER = ("paper", "reduced", "smoke")


def run_cells(cells: list[Cell], out, data_root=None, device: str = "auto", force: bool = False) -> list[dict]:
    """Run the runnable cells in-process (what ``bench run --table`` does without an executor)."""

    records = []
    for c in cells:
        if not c.runnable:
            continue
        resolved = resolve(c.config)
        validate(resolved, data_root)
        record, _ = execute(resolved, out, data_root, device, force)
        records.append(record)
    return records
