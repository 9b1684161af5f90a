"""DREAM on real MNIST features: the representative sampler, the probes, the cluster initialiser and
the diagnostics. Small class subsets keep this under a minute or two on two CPU cores."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.data.datasets import DataOptions, load_dataset
from bench.dream.clustering import embed_all, kmeans_select
from bench.dream.compose import INITIALISERS, SAMPLERS
from bench.dream.diagnostics import DiagnosticsConfig, mmd2_gaussian, per_sample_grad_norms, track_synthetic
from bench.dream.representative import ClusterSamplerConfig
from bench.run.config import RunConfig, resolve
from bench.run.context import RunContext

CLASSES, PER_CLASS = 3, 200


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on two shared cores torch's spinning OpenMP threads slow tiny steps down."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SAMPLER_KEYS = {"dream_clusters": "clusters", "dream_per_cluster": "per_cluster", "dream_interval": "interval"}
DIAGNOSTICS_KEYS = {"diagnostics_every": "every", "diagnostics_classes": "classes"}


@pytest.fixture(scope="module")
def mnist(data_root):
    return load_dataset("mnist", data_root, DataOptions(classes=CLASSES, max_train_per_class=PER_CLASS,
                                                        max_test_per_class=20))


def make_ctx(mnist, tmp_path, seed=0, method="random", ipc=1, **params):
    resolved = resolve(RunConfig(method=method, dataset="mnist", ipc=ipc, seed=seed, scale="smoke",
                                 data=DataOptions(classes=CLASSES, max_train_per_class=PER_CLASS)))
    # the sampler's and the diagnostics' own settings, as `--set sampler.clusters=...` would resolve them
    sampler = ClusterSamplerConfig(**{SAMPLER_KEYS[k]: v for k, v in params.items() if k in SAMPLER_KEYS})
    diagnostics = DiagnosticsConfig(**{DIAGNOSTICS_KEYS[k]: v for k, v in params.items() if k in DIAGNOSTICS_KEYS})
    resolved = dataclasses.replace(resolved, sampler_config=sampler, diagnostics=diagnostics)
    return RunContext(resolved, mnist, torch.device("cpu"), tmp_path)


@pytest.fixture(scope="module")
def net(mnist):
    torch.manual_seed(0)
    from bench.nets.models import build_model

    return build_model("convnet3", mnist)


@pytest.fixture(scope="module")
def class0_features(mnist, net):
    return embed_all(net, mnist.normalise(mnist.class_images(0)))


def test_representative_returns_distinct_indices_of_the_class(mnist, net, tmp_path):
    ctx = make_ctx(mnist, tmp_path, dream_clusters=32)
    sampler = SAMPLERS.get("representative")(mnist, ctx)
    for c in range(CLASSES):
        ix = sampler.sample(c, 64, net=net, step=0)
        assert len(ix) == 32 and len(torch.unique(ix)) == 32  # min(n_req, N): N = 32 clusters
        assert (mnist.train_labels[ix] == c).all()
    # without dream_clusters: N_eff = min(128, n_req), returns min(n_req, N_eff)
    default = SAMPLERS.get("representative")(mnist, make_ctx(mnist, tmp_path))
    assert default.batch_shape(64, 5000) == (64, 64) and default.batch_shape(256, 5000) == (128, 128)
    assert len(torch.unique(default.sample(1, 48, net=net))) == 48
    rec = ctx.metrics["dream"]["sampler"]
    assert rec["N"] == 32 and rec["reclusterings"] == CLASSES and rec["returned_batch"] == 32
    sampler.sample(0, 64, net=net, step=1)  # cached: no clustering, but the record's call count moves
    assert ctx.metrics["dream"]["sampler"]["calls"] == CLASSES + 1
    assert ctx.metrics["dream"]["sampler"]["reclusterings"] == CLASSES
    assert {"duplicates", "empty_clusters", "empty_after_reseed", "handling"} <= set(rec)
    assert ctx.timer.seconds["clustering"] > 0


def test_picks_are_nearer_their_centres_than_random_picks(class0_features):
    f = class0_features
    pos, info = kmeans_select(f, 32, 1, seed=3)
    centres = info["centroids"]
    picked = torch.linalg.vector_norm(centres - f[pos], dim=1).mean()
    gen = torch.Generator().manual_seed(0)
    random_d = torch.stack([torch.linalg.vector_norm(centres - f[torch.randperm(len(f), generator=gen)[:32]], dim=1).mean()
                            for _ in range(10)]).mean()
    assert picked < 0.8 * random_d
    # and the picks cover the class better (quantisation error) than random subsets of the same size
    cover = torch.cdist(f, f[pos]).min(1).values.mean()
    rand_cover = torch.stack([torch.cdist(f, f[torch.randperm(len(f), generator=gen)[:32]]).min(1).values.mean()
                              for _ in range(10)]).mean()
    assert cover < rand_cover


def test_same_seed_same_picks_and_the_global_rng_is_untouched(mnist, net, tmp_path):
    a = SAMPLERS.get("representative")(mnist, make_ctx(mnist, tmp_path, seed=5, dream_clusters=16))
    b = SAMPLERS.get("representative")(mnist, make_ctx(mnist, tmp_path, seed=5, dream_clusters=16))
    c = SAMPLERS.get("representative")(mnist, make_ctx(mnist, tmp_path, seed=6, dream_clusters=16))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    pa = a.sample(0, 16, net=net, step=0)
    assert torch.equal(torch.rand(3), expected)  # clustering ran under a forked RNG
    assert torch.equal(pa, b.sample(0, 16, net=net, step=0))
    assert not torch.equal(pa, c.sample(0, 16, net=net, step=0))


def test_reclustering_schedule_and_exact_resume(mnist, net, tmp_path):
    ctx = make_ctx(mnist, tmp_path, dream_clusters=8, dream_interval=10)
    s = SAMPLERS.get("representative")(mnist, ctx)
    for step in range(25):  # clusters at 0, 10, 20
        s.sample(0, 8, net=net, step=step)
    assert s.stats["reclusterings"] == 3
    s.sample(0, 8, net=net, step=0)  # a counter that restarts (IDC's inner loop) re-clusters
    assert s.stats["reclusterings"] == 4
    s.sample(0, 8, net=net, step=0)  # inner_loop = 1: ot is 0 at every new network, which re-clusters too
    assert s.stats["reclusterings"] == 5
    state = s.state_dict()
    twin = SAMPLERS.get("representative")(mnist, make_ctx(mnist, tmp_path, dream_clusters=8, dream_interval=10))
    twin.load_state_dict(state)
    for step in (1, 5, 10, 11):
        assert torch.equal(s.sample(0, 8, net=net, step=step), twin.sample(0, 8, net=net, step=step))
    timing = "clustering_s"
    assert {k: v for k, v in twin.stats.items() if k != timing} == {k: v for k, v in s.stats.items() if k != timing}


def test_representative_batch_has_lower_mmd_to_its_class_than_random(class0_features):
    f = class0_features
    gen = torch.Generator().manual_seed(1)
    dream, rand = [], []
    for r in range(5):
        pos, _ = kmeans_select(f, 32, 1, seed=100 + r)
        dream.append(mmd2_gaussian(f[pos], f)[0])
        rand.append(mmd2_gaussian(f[torch.randperm(len(f), generator=gen)[:32]], f)[0])
    assert sum(dream) / 5 < sum(rand) / 5


def test_duplicates_and_empty_clusters_are_counted_and_handled():
    # 10 distinct points, each 5 times: 12 centres cannot all be non-empty, picks stay distinct
    base = torch.randn(10, 8) * 10
    f = base.repeat_interleave(5, 0)
    pos, info = kmeans_select(f, 12, 1, seed=0)
    assert len(torch.unique(pos)) == 12
    assert info["empty_clusters"] >= 2 and info["empty_after_reseed"] >= 2
    kept, info_kept = kmeans_select(f, 12, 1, seed=0, dedupe=False)  # the authors' behaviour
    assert len(torch.unique(kept)) < 12 and info_kept["duplicates"] > 0


def test_starting_centres_are_distinct_so_the_authors_handling_still_repeats_nothing(class0_features):
    # DREAM's query under fast-pytorch-kmeans 0.2.x (starting centres drawn with replacement) repeats the
    # class's smallest-norm image in about 95 % of 32-of-100 batches; 0.1.9, the release DREAM was written
    # against, draws distinct points, and so do we (docs/parity.md, stop 37): no repeat even without dedupe
    f = class0_features[:100]
    for seed in range(20):
        pos, info = kmeans_select(f, 32, 1, seed=seed, dedupe=False)
        assert len(torch.unique(pos)) == 32 and info["empty_clusters"] == 0 and info["duplicates"] == 0


def test_central_and_boundary_definitions(mnist, net, tmp_path, class0_features):
    ctx = make_ctx(mnist, tmp_path)
    f = class0_features
    d = torch.linalg.vector_norm(f - f.mean(0), dim=1)
    ix = mnist.class_indices(0)
    pos = {int(i): k for k, i in enumerate(ix)}
    central = SAMPLERS.get("central")(mnist, ctx).sample(0, 20, net=net)
    boundary = SAMPLERS.get("boundary")(mnist, ctx).sample(0, 20, net=net)
    dc = d[[pos[int(i)] for i in central]]
    db = d[[pos[int(i)] for i in boundary]]
    assert torch.allclose(dc.sort().values, d.sort().values[:20], atol=1e-4)
    assert torch.allclose(db.sort().values, d.sort().values[-20:], atol=1e-4)
    bg = SAMPLERS.get("boundary_grad")(mnist, ctx).sample(1, 10, net=net)
    norms = per_sample_grad_norms(net, mnist.normalise(mnist.class_images(1)), 1)
    ix1 = mnist.class_indices(1)
    chosen = torch.isin(ix1, bg)
    assert norms[chosen].min() >= norms[~chosen].max() - 1e-5


def test_per_sample_grad_norms_match_a_loop(mnist, net):
    x = mnist.normalise(mnist.class_images(2)[:4])
    fast = per_sample_grad_norms(net, x, 2)
    for i in range(4):
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(x[i:i + 1]), torch.tensor([2])).backward()
        slow = torch.sqrt(sum(p.grad.pow(2).sum() for p in net.parameters()))
        assert torch.isclose(fast[i], slow, rtol=1e-3)
    net.zero_grad()


@pytest.mark.parametrize("factor,ipc", [(1, 2), (2, 1)])
def test_cluster_initialiser_shapes_and_tiling(mnist, tmp_path, factor, ipc):
    ctx = make_ctx(mnist, tmp_path, method="random", ipc=ipc)
    init = INITIALISERS.get("cluster")()
    space = "unit" if factor == 2 else "normalized"
    synset = init(ctx, ipc, space=space, factor=factor, pipeline="idc" if factor == 2 else "vico")
    assert synset.images.shape == (CLASSES * ipc, 1, 28, 28)
    assert synset.labels.tolist() == [c for c in range(CLASSES) for _ in range(ipc)]
    rec = ctx.metrics["dream"]["init"]
    assert rec["k_per_class"] == ipc * factor * factor and rec["feature_space"] == space
    if factor == 2:
        # each 14x14 quadrant is a nearest-downsampled real image of the class, all four distinct
        quads = [synset.images[0, :, r * 14:(r + 1) * 14, q * 14:(q + 1) * 14] for r in range(2) for q in range(2)]
        small = torch.nn.functional.interpolate(mnist.class_images(0), size=(14, 14))
        for quad in quads:
            assert (small - quad).abs().flatten(1).amax(1).min() < 1e-6
        assert len({tuple(q.flatten().tolist()) for q in quads}) == 4
    else:
        real = mnist.normalise(mnist.class_images(0))
        for img in synset.images[:ipc]:
            assert (real - img).abs().flatten(1).amax(1).min() < 1e-5


def test_diagnostics_record_keys(mnist, net, tmp_path):
    ctx = make_ctx(mnist, tmp_path, dream_clusters=16, diagnostics_every=2, diagnostics_classes=(0,))
    rep = SAMPLERS.get("representative")(mnist, ctx)
    for step in range(4):
        rep.sample(0, 16, net=net, step=step)
        rep.sample(1, 16, net=net, step=step)  # not an observed class
    diag = ctx.metrics["diagnostics"]
    assert [e["call"] for e in diag["mmd"]] == [0, 2] and diag["calls"] == {"0": 4, "1": 4}
    assert len(diag["grad_norms"][0]["norms"]) == 16 and diag["mmd"][0]["sampler"] == "representative"
    assert diag["clustering"][-1]["clustering_s"] > 0
    random_ctx = make_ctx(mnist, tmp_path, diagnostics_every=1)
    SAMPLERS.get("random")(mnist, random_ctx).sample(0, 16, net=net, step=0)
    assert random_ctx.metrics["diagnostics"]["mmd"][0]["sampler"] == "random"
    images = torch.randn(CLASSES, 1, 28, 28)
    assert track_synthetic(ctx, images, 0) is None  # first version
    assert track_synthetic(ctx, images, 1) is None  # not due (every 2)
    assert track_synthetic(ctx, images, 2) == pytest.approx(0.0, abs=1e-4)
    assert track_synthetic(ctx, images + 0.5, 4) > 0
    assert [e["iteration"] for e in diag["feature_migration"]] == [0, 2, 4]


def test_dream_flag_and_labels():
    from bench.cli.common import configs_from_args
    from bench.cli.main import build_parser

    args = build_parser().parse_args(["run", "--method", "random", "--dataset", "mnist", "--ipc", "1", "--dream"])
    resolved = resolve(configs_from_args(args)[0])
    assert resolved.sampler is None and resolved.initialiser == "cluster" and resolved.label == "random+dream"
    d = resolved.as_dict()
    assert d["initialiser"] == "cluster"


def test_efficiency_first_checkpoint_and_ratio():
    from bench.dream.diagnostics import efficiency, mean_curve

    recs = [{"metrics": {"curve": [{"iteration": i, "accuracy": a} for i, a in zip((0, 10, 20, 40), accs)]}}
            for accs in ((50, 60, 70, 80), (52, 62, 72, 82))]
    base = mean_curve(recs)
    assert base == [(0, 51.0), (10, 61.0), (20, 71.0), (40, 81.0)]
    assert efficiency(base, [(0, 60.0), (10, 81.0), (20, 90.0), (40, 90.0)])["ratio"] == 4.0
    assert efficiency(base, [(0, 60.0), (10, 70.0)])["first_iteration"] is None
    assert efficiency(base, [(0, 85.0)])["ratio"] == float("inf")
