"""Learned metrics' weights: loaded from a torch hub cache (seeded files with the upstream keys and shapes, written
into a temporary TORCH_HOME), fetched on first use (from a local file URL, never the network), the one-line message
offline or after a failed fetch; the release's FloLPIPS frame range and pooling, patch FID's grid."""
from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from comparisons.metrics import METRICS, MetricError, get_metric, metric_availability
from comparisons.metrics import nets, weights
from comparisons.metrics.fid import PatchFIDPool, fid_from_features, patch_origins, patches
from comparisons.metrics.flolpips import pool_release, raft_flow
from tests.metric_weights import write_weights
from tests.test_comparisons_metrics import distorted
from tests.test_video_io import clip

NET_BUILDERS = (nets.lpips_alex, nets.st_lpips_alex, nets.dists_vgg, nets.raft_large)


def _forget_nets() -> None:
    for build in NET_BUILDERS:
        build.cache_clear()
    weights.forget_failures()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def weight_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """A TORCH_HOME holding every weight file the metrics need, seeded random values (written once per module)."""
    home = tmp_path_factory.mktemp("torch_home")
    return home, write_weights(home, seed=7)


@pytest.fixture
def cached(weight_home, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every weight cached, offline (S2VC_OFFLINE=1 from conftest): loading must not need the network."""
    monkeypatch.setenv("TORCH_HOME", str(weight_home[0]))
    _forget_nets()
    yield weight_home[1]
    _forget_nets()


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _forget_nets()
    yield tmp_path / "torch" / "hub" / "checkpoints"
    _forget_nets()


def _file(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_networks_load_the_cached_files(cached: dict[str, Path]) -> None:
    assert all(METRICS[m].availability() is None for m in ("lpips_alex", "dists", "flolpips_raft", "fid_patch256"))
    alex, vgg, raft = _file(cached["alexnet"]), _file(cached["vgg16"]), _file(cached["raft_large"])
    assert torch.equal(nets.lpips_alex().net.slice1[0].weight, alex["features.0.weight"])
    assert torch.equal(nets.dists_vgg().stage1[0].weight, vgg["features.0.weight"])
    assert torch.equal(nets.raft_large().feature_encoder.convnormrelu[0].weight,
                       raft["feature_encoder.convnormrelu.0.weight"])
    inception = nets.fid_inception().inception.state_dict()
    assert all(torch.equal(inception[k], v) for k, v in _file(cached["inception"]).items())


def test_learned_distances_run_from_the_cache(cached: dict[str, Path]) -> None:
    ref = clip(t=2, h=48, w=64)
    for name in ("lpips_alex", "dists"):
        metric = get_metric(name)
        assert np.allclose(metric(ref, ref), 0.0, atol=1e-6), name
        mild, strong = metric.evaluate(ref, distorted(ref, 4)).clip, metric.evaluate(ref, distorted(ref, 40)).clip
        assert 0 < mild < strong, name


@pytest.mark.parametrize("switch", ["HF_HUB_OFFLINE", "S2VC_OFFLINE"])
def test_offline_says_which_file_goes_where(empty_home: Path, switch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S2VC_OFFLINE")
    monkeypatch.setenv(switch, "1")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("fetched while offline"))
    reasons = metric_availability()
    expected = {"lpips_alex": "alexnet-owt-7be5be79.pth", "dists": "vgg16-397923af.pth",
                "flolpips_raft": "alexnet-owt-7be5be79.pth", "fid_patch256": "weights-inception-2015-12-05"}
    for name, filename in expected.items():
        why = reasons[name]
        assert filename in why and str(empty_home) in why and f"{switch}=1" in why and "\n" not in why, name
    assert "raft_large_C_T_SKHT_V2-ff5fadd5.pth" in reasons["flolpips_raft"]  # both its files, in one line
    with pytest.raises(MetricError, match=r"lpips_alex: .*alexnet-owt-7be5be79\.pth"):
        get_metric("lpips_alex").evaluate(clip(t=1, h=40, w=40), clip(t=1, h=40, w=40))
    assert not empty_home.exists() or not any(empty_home.iterdir())


def test_failed_fetch_is_one_line_once(empty_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S2VC_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def no_network(url, timeout):
        calls.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert metric_availability()["lpips_alex"] is None  # online: fetched on first use
    frames = clip(t=1, h=40, w=40)
    for _ in range(2):  # the second run does not try again
        with pytest.raises(MetricError) as err:
            get_metric("lpips_alex").evaluate(frames, frames)
        assert "fetching it failed: URLError" in str(err.value) and "alexnet-owt-7be5be79.pth" in str(err.value)
        assert "\n" not in str(err.value)
    assert calls == [weights.ALEXNET.url]
    assert "fetching it failed" in metric_availability()["flolpips_raft"]
    assert not any(empty_home.iterdir())  # no partial file


def test_fetch_lands_the_checked_file_atomically(tmp_path: Path) -> None:
    source = tmp_path / "upstream.pth"
    torch.save({"w": torch.arange(4.0)}, source)
    import hashlib

    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    target = tmp_path / "cache" / "net-abc.pth"
    weights.fetch(source.as_uri(), target, digest[:8])
    assert target.read_bytes() == source.read_bytes()
    with pytest.raises(ValueError, match="SHA-256"):
        weights.fetch(source.as_uri(), tmp_path / "cache" / "other.pth", "0" * 8 if digest[:8] != "0" * 8 else "1" * 8)
    assert sorted(p.name for p in target.parent.iterdir()) == ["net-abc.pth"]


def test_ensure_fetches_a_missing_file_online(empty_home: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("S2VC_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    source = tmp_path / "alexnet.pth"
    source.write_bytes(b"weights")
    local = weights.WeightFile("alexnet", weights.ALEXNET.filename, source.as_uri(), "test AlexNet")
    assert weights.ensure(local) == empty_home / weights.ALEXNET.filename
    assert (empty_home / weights.ALEXNET.filename).read_bytes() == b"weights"


def test_patch_grid_counts() -> None:
    assert len(patch_origins(1080, 1920, 256)) == 49  # 4 x 7 aligned + 3 x 7 offset by 128
    assert len(patch_origins(1080, 1920, 128)) == 8 * 15 + 7 * 14
    assert patch_origins(383, 1920, 256) == [(0, c * 256) for c in range(7)]  # one side < 384: no offset grid
    assert (128, 128) in patch_origins(384, 384, 256) and len(patch_origins(384, 384, 256)) == 2
    frames = clip(t=2, h=400, w=520)
    cut = patches(frames, 256)
    assert cut.shape == (2 * 3, 3, 256, 256) and cut.dtype == torch.uint8
    assert torch.equal(cut[2], torch.from_numpy(frames[0, 128:384, 128:384]).permute(2, 0, 1))


def test_patch_fid_is_zero_on_identical_clips(cached: dict[str, Path]) -> None:
    ref = clip(t=1, h=384, w=512)  # 2 + 1 patches of 256
    metric = get_metric("fid_patch256")
    same, other = metric.evaluate(ref, ref).clip, metric.evaluate(ref, distorted(ref, 60)).clip
    assert abs(same) < 1e-3 and other > same
    with pytest.raises(MetricError, match="at least 2 patches of 256x256"):
        metric.evaluate(ref[:1, :300, :300], ref[:1, :300, :300])


def test_saved_features_pool_to_the_same_fid(cached: dict[str, Path]) -> None:
    """A suite keeps each clip's Inception features and pools them later: equal to one pool fed every clip."""
    one, two = clip(t=1, h=384, w=512, seed=1), clip(t=2, h=384, w=512, seed=2)  # 3 patch pairs per frame
    pool = PatchFIDPool(256, keep_features=True)
    pool.update(one, distorted(one, 40))
    pool.update(two, distorted(two, 40))
    real, fake = pool.features()
    assert real.shape == fake.shape == (9, 2048) and real.dtype == np.float32
    metric = get_metric("fid_patch256")
    parts = [metric.evaluate_with_state(ref, distorted(ref, 40)) for ref in (one, two)]
    assert [len(state["real"]) for _, state in parts] == [3, 6]
    assert parts[0][0].clip == pytest.approx(metric.evaluate(one, distorted(one, 40)).clip, rel=1e-9)
    pooled = fid_from_features(np.concatenate([s["real"] for _, s in parts]),
                               np.concatenate([s["fake"] for _, s in parts]))
    assert pooled == pytest.approx(pool.compute(), rel=1e-5) and pooled > 0
    assert fid_from_features(real, fake) == pytest.approx(pool.compute(), rel=1e-5)
    with pytest.raises(MetricError, match="at least 2 features"):
        fid_from_features(real[:1], fake[:1])


def test_suite_pools_patch_fid_per_dataset(cached: dict[str, Path], tmp_path: Path) -> None:
    """Suite jobs keep their patches' features; the report's FID per rate point is pooled over the dataset."""
    from comparisons.results import load_results
    from comparisons.suite.execute import plan_jobs, run_jobs, suite_logger
    from comparisons.suite.engines import InProcess
    from comparisons.suite.jobs import Settings
    from comparisons.suite.report import build_report
    from comparisons.suite.sources import load_sequences
    from model.video_io import write_y4m

    (tmp_path / "src" / "D").mkdir(parents=True)
    for seed in (1, 2):
        write_y4m(tmp_path / "src" / "D" / f"s{seed}.y4m", clip(t=2, h=192, w=192, seed=seed), 25)
    settings = Settings(frames=2, presets=(("x264", "ultrafast"),), metrics=("psnr_rgb", "fid_patch128"))
    out = tmp_path / "out"
    jobs = plan_jobs(load_sequences(tmp_path / "src"), ["x264"], out, settings, kbps=[30.0, 90.0])
    run_jobs(jobs, InProcess(), suite_logger(out / "suite.log"), progress=False)
    suite = build_report(out, anchor="x264", png=False)
    fid = suite["datasets"]["D"]["fid"]
    assert fid["available"], fid
    points = fid["pooled"]["fid_patch128"]["x264"]
    assert [(p["rate_index"], p["sequences"], p["patch_pairs"]) for p in points] == [(0, 2, 8), (1, 2, 8)]
    for p, kbps in zip(points, ("30", "90")):  # 2 frames x 2 patches (aligned + offset grid) x 2 sequences
        files = [out / "sequences" / "D" / s / "metric_state" / f"x264_{kbps}kbps.fid_patch128.npz"
                 for s in ("s1", "s2")]
        arrays = [np.load(f) for f in files]
        assert p["fid"] == pytest.approx(fid_from_features(np.concatenate([a["real"] for a in arrays]),
                                                           np.concatenate([a["fake"] for a in arrays])))
    rates = {row["rate_index"]: row["fid_patch128"] for row in suite["datasets"]["D"]["rate_points"]}
    assert rates == {p["rate_index"]: pytest.approx(p["fid"]) for p in points}  # the table shows pooled FIDs
    record = load_results(out / "sequences" / "D" / "s1" / "jobs" / "x264_30kbps.json")["records"][0]
    assert record["metric_state"] == {"fid_patch128": "metric_state/x264_30kbps.fid_patch128.npz"}
    assert "pooled" in (out / "tables" / "rate_points.md").read_text()


def test_release_pooling_weights_layer_maps_by_flow_difference() -> None:
    maps = [torch.rand(2, 1, 8, 8), torch.rand(2, 1, 4, 4)]
    uniform = torch.ones(2, 2, 16, 16)
    expected = sum(m.mean(dim=(1, 2, 3)) for m in maps).double()
    assert torch.allclose(pool_release(maps, uniform), expected)
    spot = torch.zeros(2, 2, 8, 8)
    spot[:, 0, 3, 5] = 1.0  # all the weight on one position at the first layer's size
    assert torch.allclose(pool_release(maps[:1], spot), maps[0][:, 0, 3, 5].double())
    assert torch.equal(pool_release(maps, torch.zeros(2, 2, 16, 16)), torch.zeros(2, dtype=torch.float64))


def test_flolpips_raft_defines_frames_2_to_n_minus_1(cached: dict[str, Path]) -> None:
    ref = clip(t=3, h=128, w=132)  # RAFT-large needs 128 px; 132 is padded to a multiple of 8 and cropped back
    assert raft_flow(nets.raft_large(), torch.rand(1, 3, 128, 132), torch.rand(1, 3, 128, 132)).shape == (1, 2, 128, 132)
    metric = get_metric("flolpips_raft")
    same = metric(ref, ref)
    assert np.isnan(same[[0, -1]]).all() and np.allclose(same[1:-1], 0.0, atol=1e-7)
    value = metric.evaluate(ref, distorted(ref, 30))
    assert np.isnan(value.per_frame[0]) and np.isnan(value.per_frame[-1])
    assert np.all(np.asarray(value.per_frame[1:-1]) > 0)
    assert value.clip == pytest.approx(np.mean(value.per_frame[1:-1]))
    with pytest.raises(MetricError, match="at least 128"):
        metric.evaluate(ref[:, :64], ref[:, :64])
    with pytest.raises(MetricError, match="at least 3 frames"):
        metric.evaluate(ref[:2], ref[:2])
