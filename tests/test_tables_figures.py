"""Tables and figures from specs, rendered from records of REAL smoke runs on the built-in digits set.

The session fixture runs the registered methods at tiny budgets (random and herding for the coreset
cells, a short IDC (+ DREAM when registered) run for curves, losses and diagnostics, a herding
parameter sweep, a continual-learning grid and a cross-architecture grid), then every table and
figure is rendered from those records and its content checked against them. Figures whose data no
registered method produces yet are skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import io
import statistics
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from bench.core.errors import BenchError
from bench.grid import cells as grid
from bench.grid import specs
from bench.grid.specs import ContinualOptions, MethodSpec, ScaleOverride
from bench.report import plots
from bench.run.store import RunStore

EVAL = (("epochs", 3),)


def _fields(method: str) -> set[str]:
    from methods import METHODS

    return {f.name for f in dataclasses.fields(METHODS.get(method).Params)} if method in METHODS else set()


def _herding() -> MethodSpec:
    return MethodSpec("Herding", "herding", params=(("init.feature_min_steps", 10),))


def _coresets() -> list[MethodSpec]:
    return [MethodSpec("Random", "random"), _herding()]


def _idc() -> MethodSpec | None:
    """A tiny IDC (+ DREAM when its sampler is registered) that stores curves, losses, diagnostics."""
    from bench.dream.compose import SAMPLERS

    fields = _fields("idc")
    if not fields:
        return None
    wanted = {"iterations": 2, "inner_loop": 2, "curve_points": 2, "curve_epochs": 2, "batch_real": 16,
              "sampler.batch_real": 16, "n_data": 32, "diagnostics.every": 1, "diagnostics.track_every": 1}
    params = tuple(sorted((k, v) for k, v in wanted.items() if k in fields or "." in k))
    dream = "representative" in SAMPLERS
    return MethodSpec("IDC+DREAM" if dream else "IDC", "idc", dream=dream, params=params)


SMOKE_T1 = ScaleOverride(seeds="0-1", ipcs=(1,))
# the fixture's IDC run records every diagnostic (Figs 1a, 2c, 3 and 4a draw from them)
SMOKE_IDC = ScaleOverride(seeds="0", ipcs=(1,), datasets=("digits",), classes=3, max_train_per_class=40,
                          max_test_per_class=20, params=(("diagnostics.every", 1), ("diagnostics.track_every", 1)))


def table1_variant():
    spec = specs.load("table", "1")
    methods = [_herding() if m.key == "Herding" else m for m in spec.grid.methods]
    return replace(spec, grid=replace(spec.grid, methods=tuple(methods)), scales={"smoke": SMOKE_T1})


def figure_variant(fid: str, methods, scale: ScaleOverride, **figure_changes):
    spec = specs.load("figure", fid)
    g = replace(spec.grid, methods=tuple(methods), params=(), param_sets=((),))
    fig = replace(spec.figure, **figure_changes) if figure_changes else spec.figure
    return replace(spec, grid=g, scales={"smoke": scale}, figure=fig)


def table4_variant():
    spec = specs.load("table", "4")
    methods = [m for m in spec.grid.methods if m.reported] + [MethodSpec("IDC", "random")]
    return replace(spec, grid=replace(spec.grid, methods=tuple(methods)),
                   scales={"smoke": ScaleOverride(seeds="0", datasets=("digits",), classes=3, max_train_per_class=40,
                                                  max_test_per_class=20)})


SMOKE_ONE = ScaleOverride(seeds="0", ipcs=(1,))


def fig4b_variant():
    spec = figure_variant("fig4b", [_herding()], SMOKE_ONE, x="param:init.feature_epochs", logx=False,
                          xlabel="feature-network epochs (herding)")
    return replace(spec, grid=replace(spec.grid, param_sets=((("init.feature_epochs", 1),), (("init.feature_epochs", 2),))))


def fig4d_variant():
    spec = figure_variant("fig4d", [MethodSpec("Random", "random")],
                          ScaleOverride(seeds="0", ipcs=(1,), datasets=("digits",)))
    return replace(spec, continual=ContinualOptions(steps=5, protocol="idc", eval_model="convnet3", epochs=2))


@pytest.fixture(scope="session")
def store(tmp_path_factory, _quiet_offline_env):
    out = tmp_path_factory.mktemp("tables-figures") / "results"
    t1 = table1_variant()
    grid.run_cells(grid.expand(t1, "smoke", datasets=["digits"], methods=["Random", "Herding"], eval=EVAL),
                   out, device="cpu")
    grid.run_cells(grid.expand(fig4b_variant(), "smoke", datasets=["digits"], eval=EVAL), out, device="cpu")
    grid.run_cells(grid.expand(table4_variant(), "smoke", eval=EVAL), out, device="cpu")
    idc = _idc()
    if idc is not None:
        grid.run_cells(grid.expand(figure_variant("fig2b", [idc], SMOKE_IDC), "smoke", eval=EVAL), out, device="cpu")
    cl = fig4d_variant()
    grid.run_cells(grid.expand(cl, "smoke", eval=EVAL), out, device="cpu")
    from bench.run.store import RunStore

    return SimpleNamespace(out=out, t1=t1, idc=idc, records=RunStore(out).records())


# ------------------------------------------------------------------------------------------ specs
def test_every_spec_loads():
    tables = specs.available("table")
    figures = specs.available("figure")
    assert tables == [f"table{i}" for i in range(1, 7)]
    assert {"fig2b", "fig2c", "fig2d", "fig3", "fig4a", "fig4b", "fig4c", "fig4d", "fig5"} <= set(figures)
    for kind in ("table", "figure"):
        for spec in specs.load_all(kind):
            assert spec.grid.methods and spec.grid.datasets
    t1 = specs.load("table", "1")
    assert t1.paper_value("cifar10|10", "DREAM").mean == 69.4
    assert t1.paper_value("cifar10|10", "DREAM").std == 0.4
    assert t1.paper_value("svhn|1", "IDC").note == "†"
    assert t1.paper_value("mnist|1", "MTT").mean is None


@pytest.mark.parametrize("mutation, needle", [
    ('[grid]\ndatasets = ["mnist"]\nipcs = [1]\ncolour = 1\n', "unknown key(s) ['colour']"),
    ('[grid]\ndatasets = ["mnist"]\nipcs = [1]\n[[grid.methods]]\nkey = "X"\nmethod = "dcc"\n', "unknown method 'dcc'"),
    ('[grid]\ndatasets = ["mnistt"]\nipcs = [1]\n', "unknown dataset 'mnistt'"),
])
def test_bad_spec_names_file_key_and_choices(tmp_path, mutation, needle):
    text = 'kind = "table"\n[layout]\nrows = ["dataset"]\ncolumns = ["method"]\n' + mutation
    if "[[grid.methods]]" not in text:
        text += '[[grid.methods]]\nkey = "R"\nmethod = "random"\n'
    path = tmp_path / "tablex.toml"
    path.write_text(text)
    with pytest.raises(BenchError) as err:
        specs.load_spec_file(path)
    message = str(err.value)
    assert str(path) in message and needle in message
    assert "known" in message
    if "method" in needle:
        assert "random" in message and "idc" in message  # registered and planned methods listed


def test_unknown_ids_list_the_available_ones():
    with pytest.raises(BenchError, match="available tables: table1, table2"):
        specs.load("table", "9")
    with pytest.raises(BenchError, match="available figures: .*fig4b"):
        specs.load("figure", "9z")


def test_unregistered_methods_are_missing_not_failing():
    spec = specs.load("table", "1")
    cells = grid.expand(spec, "smoke", datasets=["digits"])
    from methods import METHODS

    for cell in cells:
        if cell.method.method in METHODS:
            assert not cell.note.startswith("method"), cell.note
        else:
            assert cell.note == f"method {cell.method.method!r} is not registered yet"
            assert cell.config is None
    assert {c.ipc for c in cells} == {1, 10}  # the smoke section's IPCs
    assert {c.seed for c in cells} == {0, 1}


# ------------------------------------------------------------------------------------------ tables
def _accuracies(store, spec, key: str, **expand_kwargs) -> list[float]:
    """The primary accuracy of every stored record (every seed) of one method key of a spec's grid."""
    ids = {c.cell_id for c in grid.expand(spec, "smoke", methods=[key], eval=EVAL, **expand_kwargs)}
    return [r["accuracy"]["mean"] for r in store.records if r["cell_id"] in ids]


def test_table1_cells_hold_the_records_mean_and_std(store):
    from bench.report.table_render import render_csv, render_latex, render_markdown
    from bench.report.tables import tables_for

    tables = tables_for(store.t1, store.out, eval=EVAL)
    assert [t.scale for t in tables] == ["smoke"]
    t = tables[0]
    md, tex, csv = render_markdown(t), render_latex(t), render_csv(t)
    import pandas as pd

    frame = pd.read_csv(io.StringIO(csv))
    for key in ("Random", "Herding"):
        accs = _accuracies(store, store.t1, key, datasets=["digits"], ipcs=[1])
        assert len(accs) == 2
        mean, std = statistics.fmean(accs), statistics.pstdev(accs)
        assert f"{mean:.2f} ± {std:.2f} (2)" in md
        assert f"{mean:.2f} $\\pm$ {std:.2f} (2)" in tex
        row = frame[(frame.method == key) & (frame.ipc == 1)].iloc[0]
        assert row.ours_mean == pytest.approx(mean) and row.ours_std == pytest.approx(std) and row.n_seeds == 2
        # the built-in 8x8 digits are not MNIST: no paper number beside them, nothing flagged
        assert pd.isna(row.paper_mean) and row.paper_dataset == "digits" and not row.flagged
    assert (frame[frame.method == "DC"].status == "missing").all()
    assert set(frame[frame.method == "CAFE"].status) == {"reported"}
    assert "Scale preset: smoke" in md and "digits [train<=500/class,test<=100/class]" in md
    assert "MNIST" not in md and "64.9" not in md
    # the caption states the evaluation the records ran (EVAL's epochs), not the preset's
    assert f"evaluation of the records: {dict(EVAL)['epochs']} epochs, 1 network(s) per run" in md
    assert "missing" in md
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr)", r"\multicolumn"):
        assert token in tex


def test_every_table_renders_in_every_format(store, tmp_path):
    from bench.report.table_render import write_tables

    for spec in specs.load_all("table"):
        for fmt in ("md", "latex", "csv"):
            written = write_tables(spec, store.out, fmt, folder=tmp_path)
            assert written
            for t, path, text in written:
                assert path.exists() and path.read_text() == text
                if fmt == "md" and not any(e.status == "ok" for e in t.entries):
                    assert "missing" in text and t.scale == "paper"
    t6 = write_tables(specs.load("table", "6"), store.out, "md", folder=tmp_path)[0][2]
    # Table 6 is runnable now (tesla, tesla+dream on imagenet1k): its cells are missing, beside the paper's
    assert "17.8" in t6 and "18.5" in t6 and "| ImageNet-1K | 10    | missing      | 17.8" in t6


def test_table4_cross_architecture(store):
    from bench.report.table_render import render_csv
    from bench.report.tables import tables_for

    t = tables_for(table4_variant(), store.out, eval=EVAL)[0]
    import pandas as pd

    from bench.report.table_render import render_markdown

    md = render_markdown(t)
    assert "(n=1)" in md and "± 0.00" not in md  # one seed: no spread to show

    frame = pd.read_csv(io.StringIO(render_csv(t)))
    ours = frame[frame.status == "ok"]
    assert set(zip(ours.model, ours.eval_model)) == {(d, e) for d in ("convnet3", "resnet10")
                                                    for e in ("convnet3", "resnet10", "densenet121")}
    for _, row in ours.iterrows():
        rec = next(r for r in store.records if r["config"]["model"] == row.model and r["config"]["data"]["classes"] == 3
                   and r["config"]["label"] == "random")
        assert row.ours_mean == pytest.approx(rec["accuracy"]["per_model"][row.eval_model]["mean"])
    assert frame.paper_mean.isna().all()  # digits rows: the paper's CIFAR10 numbers are not shown beside them
    paper = tables_for(specs.load("table", "4"), store.out, scales=["paper"])[0]  # the spec's own dataset
    mtt = next(e for e in paper.entries if (e.method_key, e.model, e.eval_model) == ("MTT", "resnet10", "densenet121"))
    assert mtt.dataset == "cifar10" and mtt.paper.mean == 24.2


def test_cli_dry_run_marks_done_and_missing(store, capsys):
    from bench.cli.main import main

    rc = main(["run", "--table", "1", "--scale", "smoke", "--datasets", "digits", "--ipc", "1",
               "--eval-set", "epochs=3", "--out", str(store.out), "--dry-run"])
    text = capsys.readouterr().out
    assert rc == 0
    from methods import METHODS

    for m in specs.load("table", "1").grid.methods:
        if m.method and m.method not in METHODS:
            assert f"missing: method {m.method!r} is not registered yet" in text
    assert " done" in text  # random seed 0/1 at IPC 1 with epochs=3 ran in the fixture (herding differs: params)
    rows = [line.split() for line in text.splitlines()]
    ipcs = {r[r.index("digits") + 1] for r in rows if r and r[0].isdigit() and "digits" in r}
    assert ipcs == {"1"}, f"--ipc 1 was not applied: {ipcs}"
    rc = main(["tables", "--table", "x1", "--out", str(store.out)])
    assert rc == 2
    assert "available tables" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ figures
def assert_png_not_blank(path) -> None:
    from PIL import Image

    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert img.shape[0] > 150 and img.shape[1] > 150
    assert img.std() > 5.0, "figure is (nearly) uniform"
    assert (img < 200).mean() > 0.01, "figure has almost no ink"


def assert_pdf(path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and b"%%EOF" in data[-2048:] and len(data) > 2000


def _draw(spec, store, **kw):
    results = plots.draw(spec, store.out, scales=["smoke"], eval=EVAL, **kw)
    drawn = [r for r in results if r.paths]
    assert drawn, "\n".join(r.summary() for r in results)
    for r in drawn:
        png, pdf = r.paths
        assert_png_not_blank(png)
        assert_pdf(pdf)
    return drawn


@pytest.mark.parametrize("fid", ["fig2d", "fig5", "fig6"])
def test_image_figures_from_stored_synthetic_sets(store, fid):
    spec = figure_variant(fid, _coresets(), SMOKE_T1)
    (res,) = _draw(spec, store, datasets=["digits"])
    assert res.records == 2  # one synthetic set per method (seed 0)
    if fid == "fig6":
        assert "Random: 4 classes x 1 stored images" in res.description
    else:
        assert "synthetic" in res.description


def test_fig4b_final_accuracy_against_a_parameter(store):
    (res,) = _draw(fig4b_variant(), store, datasets=["digits"])
    spec = fig4b_variant()
    for epochs in (1, 2):
        one = replace(spec, grid=replace(spec.grid, param_sets=((("init.feature_epochs", epochs),),)))
        accs = _accuracies(store, one, "Herding", datasets=["digits"])
        assert accs  # seed 0, plus table 1's seed 1 when herding's smoke default is the same cell
        assert f"init.feature_epochs={epochs}: {statistics.fmean(accs):.2f}±{statistics.pstdev(accs):.2f}" in res.description


def test_fig4d_continual_learning(store):
    (res,) = _draw(fig4d_variant(), store)
    recs = [r for r in RunStore(store.out).records() if r.get("kind") == "continual"]
    assert len(recs) == 1 and recs[0]["accuracy"]["mean"] == recs[0]["steps"][-1]["accuracy"]
    assert len(recs) == 1 and all(len(r["steps"]) == 5 for r in recs)
    assert [s["classes_seen"] for s in recs[0]["steps"]] == [2, 4, 6, 8, 10]
    final = statistics.fmean(r["steps"][-1]["accuracy"] for r in recs)
    assert f"10: {final:.1f}" in res.description
    assert sorted(c for step in recs[0]["class_order"] for c in step) == list(range(10))


LINE_SOURCES = {"fig2b": "metrics.curve", "fig4c": "metrics.loss", "fig2c": "metrics.diagnostics.mmd",
                "fig4a": "metrics.diagnostics.feature_migration", "fig1a": "metrics.diagnostics.grad_norms",
                "fig3": "metrics.diagnostics.grad_norms"}


@pytest.mark.parametrize("fid", sorted(LINE_SOURCES))
def test_curve_loss_and_diagnostic_figures(store, fid):
    if store.idc is None:
        pytest.skip("method 'idc' is not registered: no run stores curves, losses or diagnostics yet")
    source = LINE_SOURCES[fid]
    recs = [r for r in store.records if r["config"]["method"] == "idc"]
    assert recs, "the fixture's IDC run left no record"
    if not any(plots.dig(r, source) for r in recs):
        pytest.skip(f"IDC records hold no {source} yet; figure untestable until then")
    spec = figure_variant(fid, [store.idc], SMOKE_IDC)
    (res,) = _draw(spec, store)
    assert res.records == len(recs)


def test_figures_report_missing_cells_clearly(store):
    results = plots.draw(specs.load("figure", "fig4b"), store.out)
    assert all(not r.paths for r in results)
    text = "\n".join(r.summary() for r in results)
    assert "nothing drawn" in text and "missing" in text


def test_report_collects_tables_and_figures(store, tmp_path):
    from bench.report.markdown import write_report

    _draw(fig4d_variant(), store)
    path = write_report(store.out, tmp_path / "report.md", draw=False)
    text = path.read_text()
    assert "## Tables" in text and "## Figures" in text
    assert "Table 1" in text and "fig4d" in text and ".png)" in text
    assert "Not generated yet" in text


def test_time_to_target_compares_curve_points_with_curve_points():
    """Table 3's iteration column: the target is the reference's last curve point (evaluated like
    every curve point), not its final accuracy, which a longer evaluation measured."""
    from bench.grid.specs import Metric
    from bench.report.tables import Entry, _curve_target, _iterations_to_reach

    def rec(points, epochs=50, final=99.0):
        return {"accuracy": {"mean": final}, "metrics": {"curve": [{"iteration": i, "accuracy": a, "epochs": epochs}
                                                                  for i, a in points]}}

    metric = Metric(key="iters", kind="iterations_to_reach", reference="DC")
    ref = Entry("DC", "mnist", 1, "convnet3", "convnet3", (), metric, "ok",
                records=[rec([(0, 20.0), (40, 80.0)]), rec([(0, 22.0), (40, 84.0)])])
    fast = Entry("DC+DREAM", "mnist", 1, "convnet3", "convnet3", (), metric, "ok",
                 records=[rec([(0, 70.0), (5, 83.0), (10, 90.0)])])
    target, why = _curve_target(ref, fast)
    assert target == 82.0 and why == ""  # mean of 80 and 84, never the final 99
    assert _iterations_to_reach(fast.records[0], target) == 5.0
    fast.records = [rec([(0, 70.0), (5, 83.0)], epochs=10)]
    target, why = _curve_target(ref, fast)
    assert target is None and "different epochs" in why


def test_fig2d_draws_the_runs_own_clusters_and_picks(tmp_path):
    """Random + DREAM init stores its clustering (clusters.pt): every star of Fig 2d is one of the
    run's synthetic images, because both are the samples the run picked."""
    spec = figure_variant("fig2d", [MethodSpec("Random + DREAM init", "random", dream=True)],
                          ScaleOverride(seeds="0", ipcs=(10,), datasets=("digits",)))
    out = tmp_path / "results"
    grid.run_cells(grid.expand(spec, "smoke", datasets=["digits"], eval=EVAL), out, device="cpu")
    (record,) = RunStore(out).records()
    assert "clusters.pt" in record["metrics"]["artifacts"]
    (res,) = _draw(spec, SimpleNamespace(out=out), datasets=["digits"])
    assert "the run's own k-means clusters and picks" in res.description
    assert "10 of 10 stars are synthetic images" in res.description
