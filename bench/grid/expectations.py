"""The reproduction suite's expectations file (``tests/repro/expected.toml``): its cells (a small
run per seed, with the measured expected mean, tolerance and provenance) and orderings (the paper's
claims at an equal budget), checked whole on load; and the in-place rewrite of measured values."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from bench.core.errors import BenchError
from bench.core.params import flatten_settings
from bench.data.datasets import DATASETS, DataOptions
from bench.dream.compose import INITIALISERS, SAMPLERS
from bench.grid.specs import SpecReader
from bench.run.config import RunConfig, parse_seeds
from methods import METHODS

DEFAULT_EXPECTED = Path(__file__).resolve().parents[2] / "tests" / "repro" / "expected.toml"
CELL_KEYS = {"id", "method", "dataset", "ipc", "dream", "sampler", "initialiser", "params", "eval", "data",
             "scale", "seeds", "expected", "tolerance", "spread", "provenance", "note"}
DEFAULT_KEYS = {"dataset", "ipc", "scale", "seeds", "threads", "data", "eval", "params", "min_tolerance"}
ORDER_KEYS = {"name", "kind", "left", "right", "margin", "claim", "metric", "known_failure"}
ORDER_KINDS = ("at_least", "faster", "lower")


@dataclass(frozen=True)
class ExpectedCell:
    id: str
    method: str
    dataset: str
    ipc: int
    scale: str
    seeds: tuple[int, ...]
    dream: bool = False
    sampler: str | None = None
    initialiser: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    eval: tuple[tuple[str, Any], ...] = ()
    data: DataOptions = DataOptions()
    expected: float | None = None  # None: not measured yet (the cell still feeds orderings)
    tolerance: float | None = None
    provenance: dict = field(default_factory=dict, compare=False)

    def configs(self, seeds: tuple[int, ...] | None = None) -> list[RunConfig]:
        return [RunConfig(self.method, self.dataset, self.ipc, seed=s, scale=self.scale, dream=self.dream,
                          sampler=self.sampler,
                          initialiser=self.initialiser, params=self.params, eval=self.eval, data=self.data)
                for s in (seeds or self.seeds)]


@dataclass(frozen=True)
class OrderCheck:
    name: str
    kind: str
    left: str
    right: str
    margin: float = 0.0
    claim: str = ""
    metric: str = ""
    known_failure: str = ""  # measured not to hold at this budget: the reason; reported, not counted


@dataclass(frozen=True)
class Expectations:
    path: Path
    cells: tuple[ExpectedCell, ...]
    orders: tuple[OrderCheck, ...]
    threads: int
    min_tolerance: float

    def cell(self, cid: str) -> ExpectedCell:
        return next(c for c in self.cells if c.id == cid)


def _pairs(table: dict | None) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(flatten_settings(table or {}).items()))


def _expected_cell(r: SpecReader, entry: dict, d: dict, where: str) -> ExpectedCell:
    r.keys(entry, CELL_KEYS, where)
    for key in ("id", "method"):
        if key not in entry:
            raise r.fail(where, f"missing key {key!r}")
    r.name("method", entry["method"], where, METHODS)
    dataset = entry.get("dataset", d.get("dataset"))
    if dataset is None:
        raise r.fail(where, "no dataset (set 'dataset' in the cell or in [defaults])")
    r.name("dataset", dataset, where, DATASETS)
    sampler, initialiser = entry.get("sampler"), entry.get("initialiser")
    if sampler is not None:
        r.name("sampler", sampler, where, SAMPLERS)
    if initialiser is not None:
        r.name("initialiser", initialiser, where, INITIALISERS)
    data = {**d.get("data", {}), **entry.get("data", {})}
    try:
        options = DataOptions(**data)
    except TypeError:
        raise r.fail(where, f"data keys {sorted(data)}; known: classes, max_train_per_class, "
                            "max_test_per_class") from None
    return ExpectedCell(
        id=str(entry["id"]), method=entry["method"], dataset=dataset, ipc=int(entry.get("ipc", d.get("ipc", 1))),
        scale=entry.get("scale", d.get("scale", "smoke")),
        seeds=tuple(parse_seeds(str(entry.get("seeds", d.get("seeds", "0-1"))))),
        dream=bool(entry.get("dream", False)), sampler=sampler, initialiser=initialiser,
        params=_pairs({**d.get("params", {}).get(entry["method"], {}), **entry.get("params", {})}),
        eval=_pairs({**d.get("eval", {}), **entry.get("eval", {})}), data=options,
        expected=entry.get("expected"), tolerance=entry.get("tolerance"),
        provenance=entry.get("provenance", {}),
    )


def _order_check(r: SpecReader, entry: dict, ids: list[str], where: str) -> OrderCheck:
    r.keys(entry, ORDER_KEYS, where)
    kind = entry.get("kind", "at_least")
    if kind not in ORDER_KINDS:
        raise r.fail(where, f"unknown kind {kind!r}; known: {list(ORDER_KINDS)}")
    for side in ("left", "right"):
        if entry.get(side) not in ids:
            raise r.fail(where, f"{side} = {entry.get(side)!r} is not a cell id; known: {ids}")
    if kind == "lower" and not entry.get("metric"):
        raise r.fail(where, "kind 'lower' needs a metric (a dotted path into record['metrics'])")
    return OrderCheck(name=entry.get("name", f"{entry['left']} vs {entry['right']}"), kind=kind,
                      left=entry["left"], right=entry["right"], margin=float(entry.get("margin", 0.0)),
                      claim=entry.get("claim", ""), metric=entry.get("metric", ""),
                      known_failure=entry.get("known_failure", ""))


def load_expectations(path: Path | str = DEFAULT_EXPECTED) -> Expectations:
    """Parse and check the whole file before anything runs (one line naming file, entry and key)."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"expectations file {path} not found")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path}: not valid TOML: {exc}") from None
    r = SpecReader(path)
    r.keys(raw, {"defaults", "cell", "order"}, "top level")
    d = raw.get("defaults", {})
    r.keys(d, DEFAULT_KEYS, "[defaults]")
    cells = [_expected_cell(r, entry, d, f"cell {i} ({entry.get('id', '?')})")
             for i, entry in enumerate(raw.get("cell", []))]
    ids = [c.id for c in cells]
    if dup := sorted({i for i in ids if ids.count(i) > 1}):
        raise r.fail("cells", f"duplicate id(s) {dup}")
    orders = [_order_check(r, entry, ids, f"order {i} ({entry.get('name', '?')})")
              for i, entry in enumerate(raw.get("order", []))]
    return Expectations(path, tuple(cells), tuple(orders), int(d.get("threads", 1)),
                        float(d.get("min_tolerance", 0.5)))


def write_measurements(path: Path, updates: dict[str, dict]) -> None:
    """Set the measured keys (expected, tolerance, spread, provenance) of each ``[[cell]]`` named in
    ``updates`` through tomlkit, which keeps every comment, the order and the layout of the file."""
    doc = tomlkit.parse(path.read_text())
    for cell in doc.get("cell", []):
        u = updates.get(str(cell.get("id")))
        if u is None:
            continue
        # blank lines and comments that close the cell (e.g. the next section's heading) stay after
        # its keys: set them aside while new keys are appended, then put them back
        body, trailing = cell.value.body, []
        while body and body[-1][0] is None:
            trailing.insert(0, body.pop()[1])
        cell["expected"] = u["expected"]
        cell["tolerance"] = u["tolerance"]
        spread = tomlkit.item(u["spread"])
        spread.comment(f"seed-to-seed std over {len(u['provenance']['per_seed'])} seeds")
        cell["spread"] = spread
        provenance = tomlkit.inline_table()
        provenance.update({k: v for k, v in u["provenance"].items() if k != "per_seed"})
        per_seed = tomlkit.inline_table()
        per_seed.update({str(s): a for s, a in u["provenance"]["per_seed"].items()})
        provenance["per_seed"] = per_seed
        cell["provenance"] = provenance
        for trivia in trailing:
            cell.value.append(None, trivia)
    path.write_text(tomlkit.dumps(doc))
