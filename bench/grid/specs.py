"""Table and figure specs: ``tables/<id>.toml`` and ``figures/<id>.toml`` -> frozen dataclasses.

A spec declares a grid (methods with their DREAM switches, datasets, IPCs, seeds, distillation and
evaluation models, parameter overrides), per-scale overrides, a layout (tables) or a plot (figures),
and the paper's numbers. Adding a table is adding a file; nothing here knows about table 1 or 2.

Validation happens on load: an unknown key, method, dataset, sampler, initialiser, model or layout
axis fails with the file, the key and the known choices. A method, sampler, initialiser or dataset
that is *planned* (being written, see ``PLANNED``) is accepted: its cells show as missing until it
is registered. The folders ``tables/`` and ``figures/`` hold TOML only (``tables`` is PyTables'
import name, so they are never Python packages).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.core.params import flatten_settings
from bench.data.datasets import DATASETS
from bench.dream.compose import INITIALISERS, SAMPLERS
from bench.grid.spec_types import (  # noqa: F401
    ContinualOptions,
    FigureOptions,
    Grid,
    Layout,
    MethodSpec,
    Metric,
    PaperValue,
    Reference,
    ScaleOverride,
    Spec,
    parse_paper_value,
)
from bench.nets.models import MODELS
from bench.run.config import parse_seeds
from methods import METHODS

REPO = Path(__file__).resolve().parents[2]
SCALE_NAMES = ("smoke", "reduced", "paper")

# Names a spec may use before their implementation lands (the cells show as missing meanwhile):
# Table 6 names ImageNet-1K, which the trajectory-matching work registers.
PLANNED = {"dataset": {"imagenet1k": "ImageNet-1K"}}  # name -> display name

MODEL_DISPLAY = {"convnet3": "Conv-3", "resnet10": "Res-10", "densenet121": "Dense-121", "convnet4": "Conv-4",
                 "convnet3-bn": "Conv-3-BN", "resnet10-in": "Res-10-IN"}


def dataset_title(name: str) -> str:
    """How tables and figures name a dataset (its spec's display name)."""
    return DATASETS.get(name).title if name in DATASETS else PLANNED["dataset"].get(name, name)


def paper_stand_in(name: str) -> str | None:
    """The dataset whose paper numbers a stand-in is shown beside (its spec says), else None."""
    return DATASETS.get(name).paper_stand_in if name in DATASETS else None


def spec_dirs() -> dict[str, Path]:
    """Where specs live: the repository's folders, or ``$BENCH_SPECS/{tables,figures}``."""
    root = Path(os.environ.get("BENCH_SPECS", REPO))
    return {"table": root / "tables", "figure": root / "figures"}


# ------------------------------------------------------------------------------------------ types
class SpecReader:
    """Checks keys and names against the known ones, naming the file and the key on failure."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, message: str) -> BenchError:
        return BenchError(f"{self.path}: {where}: {message}")

    def keys(self, table: dict, known: set[str], where: str) -> None:
        if not isinstance(table, dict):
            raise self.fail(where, f"expected a table, got {type(table).__name__}")
        unknown = sorted(set(table) - known)
        if unknown:
            raise self.fail(where, f"unknown key(s) {unknown}; known keys: {sorted(known)}")

    def name(self, kind: str, value: Any, where: str, registry) -> str:
        if not isinstance(value, str) or (value not in registry and value not in PLANNED.get(kind, ())):
            known = sorted(set(registry.names()) | set(PLANNED.get(kind, ())))
            raise self.fail(where, f"unknown {kind} {value!r}; known {kind}s: {', '.join(known)}")
        return value

    def pairs(self, table: Any, where: str) -> tuple[tuple[str, Any], ...]:
        if not isinstance(table, dict):
            raise self.fail(where, "expected a table of key = value overrides")
        flat = flatten_settings(table)
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in flat.items()))

    def ints(self, values: Any, where: str) -> tuple[int, ...]:
        if not isinstance(values, list) or not all(isinstance(v, int) and v > 0 for v in values):
            raise self.fail(where, "expected a list of positive integers")
        return tuple(values)

    def strs(self, values: Any, where: str) -> tuple[str, ...]:
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise self.fail(where, "expected a list of strings")
        return tuple(values)


def _registries():
    return {"method": METHODS, "dataset": DATASETS, "model": MODELS, "sampler": SAMPLERS,
            "initialiser": INITIALISERS}


METHOD_KEYS = {"key", "method", "dream", "sampler", "initialiser", "params", "reported"}
GRID_KEYS = {"methods", "datasets", "ipcs", "seeds", "models", "eval_models", "params", "eval", "param_sets"}
SCALE_KEYS = {"seeds", "ipcs", "datasets", "models", "eval_models", "param_sets", "classes", "max_train_per_class",
              "max_test_per_class", "params", "eval", "steps"}
LAYOUT_KEYS = {"rows", "columns", "metrics", "cell"}
METRIC_KEYS = {"key", "kind", "label", "reference", "tolerance"}
METRIC_KINDS = {"accuracy", "iterations_to_reach"}
FIGURE_KEYS = {"plot", "source", "x", "y", "xlabel", "ylabel", "logx", "series", "panels", "class_index",
               "classes", "n_clusters", "max_points", "references", "reference_points"}
PLOTS = {"line", "param", "hist", "embedding", "clusters", "images", "continual"}
CONTINUAL_KEYS = {"steps", "protocol", "eval_model", "epochs", "kd_temperature", "kd_beta"}
TOP_KEYS = {"id", "kind", "title", "caption", "tolerance", "tolerance_std", "grid", "scales", "layout", "figure", "continual", "paper"}
AXES = {"method", "base", "dataset", "ipc", "model", "eval_model", "metric"}


def _axis_ok(axis: str) -> bool:
    return axis in AXES or (axis.startswith("param:") and len(axis) > 6)


def _method(r: SpecReader, entry: dict, i: int, regs) -> MethodSpec:
    where = f"[[grid.methods]] #{i + 1}"
    r.keys(entry, METHOD_KEYS, where)
    if "key" not in entry:
        raise r.fail(where, "missing 'key' (the label the table shows)")
    reported = bool(entry.get("reported", False))
    method = entry.get("method")
    if method is None and not reported:
        raise r.fail(where, "missing 'method' (or set reported = true for a paper-only column)")
    if method is not None:
        r.name("method", method, f"{where} method", regs["method"])
    sampler = entry.get("sampler")
    if sampler is not None:
        r.name("sampler", sampler, f"{where} sampler", regs["sampler"])
    initialiser = entry.get("initialiser")
    if initialiser is not None:
        r.name("initialiser", initialiser, f"{where} initialiser", regs["initialiser"])
    return MethodSpec(key=str(entry["key"]), method=method, dream=bool(entry.get("dream", False)), sampler=sampler,
                      initialiser=initialiser, params=r.pairs(entry.get("params", {}), f"{where} params"),
                      reported=reported)


def _param_sets(r: SpecReader, value: Any, where: str) -> tuple:
    if not isinstance(value, list) or not value:
        raise r.fail(where, "expected a non-empty list of tables of overrides, e.g. [{N = 32, n = 1}]")
    return tuple(r.pairs(v, f"{where} #{i + 1}") for i, v in enumerate(value))


def _datasets(r: SpecReader, values: Any, where: str, regs) -> tuple[str, ...]:
    return tuple(r.name("dataset", d, where, regs["dataset"]) for d in r.strs(values, where))


def _models(r: SpecReader, values: Any, where: str, regs) -> tuple[str, ...]:
    return tuple(r.name("model", m, where, regs["model"]) for m in r.strs(values, where))


def _seeds(r: SpecReader, value: Any, where: str) -> str:
    text = str(value)
    try:
        parse_seeds(text)
    except BenchError as exc:
        raise r.fail(where, str(exc)) from None
    return text


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise BenchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path}: not valid TOML ({exc})") from None


def _grid(r: SpecReader, g: Any, regs) -> Grid:
    if g is None:
        raise r.fail("[grid]", "missing")
    r.keys(g, GRID_KEYS, "[grid]")
    for required in ("methods", "datasets", "ipcs"):
        if required not in g:
            raise r.fail("[grid]", f"missing {required!r}")
    if not isinstance(g["methods"], list) or not g["methods"]:
        raise r.fail("[grid] methods", "expected a non-empty array of tables [[grid.methods]]")
    methods = tuple(_method(r, m, i, regs) for i, m in enumerate(g["methods"]))
    keys = [m.key for m in methods]
    if len(set(keys)) != len(keys):
        raise r.fail("[grid] methods", f"duplicate method keys in {keys}")
    return Grid(
        methods=methods,
        datasets=_datasets(r, g["datasets"], "[grid] datasets", regs),
        ipcs=r.ints(g["ipcs"], "[grid] ipcs"),
        seeds=_seeds(r, g.get("seeds", "0-4"), "[grid] seeds"),
        models=_models(r, g.get("models", ["convnet3"]), "[grid] models", regs),
        eval_models=_models(r, g.get("eval_models", []), "[grid] eval_models", regs),
        params=r.pairs(g.get("params", {}), "[grid] params"),
        eval=r.pairs(g.get("eval", {}), "[grid] eval"),
        param_sets=_param_sets(r, g["param_sets"], "[grid] param_sets") if "param_sets" in g else ((),),
    )


def _scales(r: SpecReader, raw_scales: Any, regs) -> dict[str, ScaleOverride]:
    scales = {}
    r.keys(raw_scales, set(SCALE_NAMES), "[scales]")
    for name, s in raw_scales.items():
        where = f"[scales.{name}]"
        r.keys(s, SCALE_KEYS, where)
        scales[name] = ScaleOverride(
            seeds=_seeds(r, s["seeds"], f"{where} seeds") if "seeds" in s else None,
            ipcs=r.ints(s["ipcs"], f"{where} ipcs") if "ipcs" in s else None,
            datasets=_datasets(r, s["datasets"], f"{where} datasets", regs) if "datasets" in s else None,
            models=_models(r, s["models"], f"{where} models", regs) if "models" in s else None,
            eval_models=_models(r, s["eval_models"], f"{where} eval_models", regs) if "eval_models" in s else None,
            param_sets=_param_sets(r, s["param_sets"], f"{where} param_sets") if "param_sets" in s else None,
            classes=s.get("classes"), max_train_per_class=s.get("max_train_per_class"),
            max_test_per_class=s.get("max_test_per_class"),
            params=r.pairs(s.get("params", {}), f"{where} params"), eval=r.pairs(s.get("eval", {}), f"{where} eval"),
            steps=s.get("steps"),
        )
    return scales


def _layout(r: SpecReader, lay: Any, method_keys: list[str]) -> Layout:
    if lay is None:
        raise r.fail("[layout]", "missing (a table needs rows and columns)")
    r.keys(lay, LAYOUT_KEYS, "[layout]")
    rows, cols = r.strs(lay.get("rows", []), "[layout] rows"), r.strs(lay.get("columns", []), "[layout] columns")
    for axis in rows + cols:
        if not _axis_ok(axis):
            raise r.fail("[layout]", f"unknown axis {axis!r}; known axes: {sorted(AXES)} or param:<name>")
    metrics = []
    for i, m in enumerate(lay.get("metrics", [{"key": "accuracy"}])):
        if isinstance(m, str):
            m = {"key": m}
        r.keys(m, METRIC_KEYS, f"[[layout.metrics]] #{i + 1}")
        kind_m = m.get("kind", "accuracy")
        if kind_m not in METRIC_KINDS:
            raise r.fail(f"[[layout.metrics]] #{i + 1} kind", f"unknown metric {kind_m!r}; known: {sorted(METRIC_KINDS)}")
        if m.get("reference") is not None and m["reference"] not in method_keys:
            raise r.fail(f"[[layout.metrics]] #{i + 1} reference",
                         f"unknown method key {m['reference']!r}; known: {method_keys}")
        metrics.append(Metric(key=m["key"], kind=kind_m, label=m.get("label", ""), reference=m.get("reference"),
                              tolerance=m.get("tolerance")))
    return Layout(rows=rows, columns=cols, metrics=tuple(metrics), cell=lay.get("cell", Layout.cell))


def _figure(r: SpecReader, fig: Any) -> FigureOptions:
    if fig is None:
        raise r.fail("[figure]", "missing (a figure needs at least plot = ...)")
    r.keys(fig, FIGURE_KEYS, "[figure]")
    if fig.get("plot") not in PLOTS:
        raise r.fail("[figure] plot", f"unknown plot {fig.get('plot')!r}; known plots: {sorted(PLOTS)}")
    refs = []
    for i, ref in enumerate(fig.get("references", [])):
        r.keys(ref, {"label", "value", "axis", "series"}, f"[[figure.references]] #{i + 1}")
        refs.append(Reference(label=ref["label"], value=float(ref["value"]), axis=ref.get("axis", "y"),
                              series=ref.get("series")))
    points = []
    for i, ref in enumerate(fig.get("reference_points", [])):
        r.keys(ref, {"label", "x", "y"}, f"[[figure.reference_points]] #{i + 1}")
        points.append((ref["label"], tuple(zip(map(float, ref["x"]), map(float, ref["y"])))))
    for axis_key in ("series", "panels"):
        axis = fig.get(axis_key, "")
        if axis and not _axis_ok(axis):
            raise r.fail(f"[figure] {axis_key}", f"unknown axis {axis!r}; known: {sorted(AXES)} or param:<name>")
    opts = {k: v for k, v in fig.items() if k not in ("references", "reference_points", "classes")}
    return FigureOptions(**opts, classes=tuple(fig.get("classes", ())), references=tuple(refs),
                         reference_points=tuple(points))


def _continual(r: SpecReader, c: dict, regs) -> ContinualOptions:
    r.keys(c, CONTINUAL_KEYS, "[continual]")
    if c.get("protocol", "idc") not in ("idc", "dm"):
        raise r.fail("[continual] protocol", f"unknown protocol {c['protocol']!r}; known: dm, idc")
    if "eval_model" in c:
        r.name("model", c["eval_model"], "[continual] eval_model", regs["model"])
    return ContinualOptions(**c)


def _paper(r: SpecReader, raw_paper: Any) -> dict:
    paper = {}
    if not isinstance(raw_paper, dict):
        raise r.fail("[paper]", "expected a table of row key -> {column key = value}")
    for row, cols in raw_paper.items():
        if not isinstance(cols, dict):
            raise r.fail(f"[paper.{row!r}]", "expected a table of column key = value")
        paper[row] = {}
        for col, value in cols.items():
            try:
                paper[row][col] = parse_paper_value(value)
            except ValueError as exc:
                raise r.fail(f"[paper] {row!r} {col!r}", str(exc)) from None
    return paper


def _tolerances(r: SpecReader, raw: dict) -> tuple[float, float | None]:
    tolerance = raw.get("tolerance", 2.0)
    if not isinstance(tolerance, (int, float)):
        raise r.fail("tolerance", "expected a number of accuracy points")
    tolerance_std = raw.get("tolerance_std")
    if tolerance_std is not None and (not isinstance(tolerance_std, (int, float)) or tolerance_std <= 0):
        raise r.fail("tolerance_std", "expected a positive multiple of the paper's std")
    return float(tolerance), float(tolerance_std) if tolerance_std is not None else None


def load_spec_file(path: Path, kind: str | None = None) -> Spec:
    """Read and check a whole spec file; the first problem is one line naming the file and key."""
    path = Path(path)
    r = SpecReader(path)
    raw = _read_toml(path)
    regs = _registries()
    r.keys(raw, TOP_KEYS, "top level")
    kind = raw.get("kind", kind)
    if kind not in ("table", "figure"):
        raise r.fail("kind", f"unknown kind {kind!r}; known kinds: figure, table")
    spec_id = raw.get("id", path.stem)
    if spec_id != path.stem:
        raise r.fail("id", f"id {spec_id!r} differs from the file name {path.stem!r}")
    grid = _grid(r, raw.get("grid"), regs)
    layout = figure = continual = None
    if kind == "table":
        if "continual" in raw:
            raise r.fail("[continual]", "only continual-learning figures take this section")
        layout = _layout(r, raw.get("layout"), [m.key for m in grid.methods])
    else:
        figure = _figure(r, raw.get("figure"))
        if figure.plot == "continual":
            continual = _continual(r, raw.get("continual", {}), regs)
    tolerance, tolerance_std = _tolerances(r, raw)
    return Spec(id=spec_id, kind=kind, path=path, title=raw.get("title", spec_id), caption=raw.get("caption", ""),
                grid=grid, scales=_scales(r, raw.get("scales", {}), regs), tolerance=tolerance,
                tolerance_std=tolerance_std, layout=layout, figure=figure, continual=continual,
                paper=_paper(r, raw.get("paper", {})))


# ------------------------------------------------------------------------------------------ lookup
def available(kind: str) -> list[str]:
    folder = spec_dirs()[kind]
    return sorted((p.stem for p in folder.glob("*.toml")), key=_natural)


def _natural(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def normalise_id(kind: str, text: str) -> str:
    """``1`` / ``table1`` / ``Table1`` -> ``table1``; ``4b`` / ``fig4b`` -> ``fig4b``."""
    text = str(text).strip().lower()
    prefix = "table" if kind == "table" else "fig"
    if text.endswith(".toml"):
        text = Path(text).stem
    if kind == "figure" and text.startswith("figure"):
        text = "fig" + text[len("figure"):]
    return text if text.startswith(prefix) else prefix + text


def load(kind: str, ident: str) -> Spec:
    """A spec by id, or by the path of a spec file (loaded from that path, never replaced by the
    repository's spec of the same name); an unknown id lists the available ones."""
    text = str(ident)
    if "/" in text or text.endswith(".toml"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise BenchError(f"{kind} spec file {path} not found")
        return load_spec_file(path, kind)
    name = normalise_id(kind, ident)
    path = spec_dirs()[kind] / f"{name}.toml"
    if not path.exists():
        choices = available(kind)
        raise BenchError(f"unknown {kind} {ident!r}; available {kind}s: {', '.join(choices) or 'none'} "
                         f"(in {spec_dirs()[kind]})")
    return load_spec_file(path, kind)


def load_all(kind: str) -> list[Spec]:
    return [load(kind, name) for name in available(kind)]
