"""Moving the rate points of a variable-rate model (model.train.respace)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from model import S2VC, tiny
from model.loading import DEFAULT_MODEL_DIR
from model.train.respace import interpolate_log, main, respace, with_rate_points
from tests.test_train_merge import SMALL


FOUR_RATES = {"num_rates": 4, "rate_names": ("q0", "q1", "q2", "q3")}


def _model(seed: int = 0, **overrides) -> S2VC:
    torch.manual_seed(seed)
    model = S2VC(tiny().replace(**SMALL, **{**FOUR_RATES, **overrides}))
    with torch.no_grad():  # distinct, positive gains per rate point, as after training
        for name, param in model.named_parameters():
            if name.endswith("y_q_scale"):
                param.copy_(torch.rand_like(param) + 0.5)
    return model


def test_interpolate_log_hits_the_old_points_and_interpolates_geometrically() -> None:
    values = torch.tensor([[1.0, 2.0], [4.0, 2.0], [8.0, 8.0]])
    out = interpolate_log(values, [0, 1, 2, 0.5, -1, 3])
    assert torch.allclose(out[:3], values)
    assert torch.allclose(out[3], torch.tensor([2.0, 2.0]))  # geometric mean of rows 0 and 1
    assert torch.allclose(out[4], torch.tensor([0.25, 2.0]))  # row 0 * (row 0 / row 1)
    assert torch.allclose(out[5], torch.tensor([16.0, 32.0]))  # row 2 * (row 2 / row 1)


def test_interpolate_log_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least two"):
        interpolate_log(torch.ones(1, 3), [0.0])
    with pytest.raises(ValueError, match="positive"):
        interpolate_log(torch.tensor([[1.0], [0.0]]), [0.5])


def test_respace_moves_gains_and_z_densities_and_nothing_else() -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    old_hash = model.weights_hash
    changed = respace(model, [-0.8, 0.3, 1.5, 3.0])
    after = model.state_dict()
    assert sorted(changed) == sorted(k for k in after if not torch.equal(before[k], after[k]))
    assert {"intra.y_q_scale", "inter.y_q_scale"} <= set(changed)
    assert sum(".bit_estimator_z." in k for k in changed) == 11  # f1..f4 h and b, f1..f3 a
    for key in ("intra.y_q_scale", "inter.y_q_scale"):
        g = before[key]
        assert torch.allclose(after[key][3], g[3])
        assert torch.allclose(after[key][2], (g[1] * g[2]).sqrt())
        assert torch.allclose(after[key][0], g[0] * (g[0] / g[1]) ** 0.8)
    for key in (k for k in changed if ".bit_estimator_z." in k):
        assert [torch.equal(after[key][i], before[key][j]) for i, j in enumerate([0, 0, 2, 3])] == [True] * 4
    assert model.weights_hash != old_hash


def test_respace_lowers_the_bits_of_the_bundled_model_s_lowest_rate_point() -> None:
    model = S2VC.from_pretrained(DEFAULT_MODEL_DIR).eval()
    y, x = np.mgrid[0:64, 0:64]
    clip = np.stack([np.stack([(x * 4 + t * 3) % 256, (y * 4) % 256, (x + y) * 2 % 256], -1) for t in range(2)])
    clip = clip.astype(np.uint8)
    bits_before = sum(model.estimate_bits(clip, 0))
    respace(model, [-1.0, *range(1, model.config.num_rates)])
    assert sum(model.estimate_bits(clip, 0)) < 0.9 * bits_before


def test_respace_needs_one_position_per_rate_point_and_several_rate_points() -> None:
    with pytest.raises(ValueError, match="need 4 positions"):
        respace(_model(), [0.0, 1.0])
    single = S2VC(tiny().replace(**SMALL, num_rates=1, rate_names=("default",)))
    with pytest.raises(ValueError, match="at least two rate points"):
        respace(single, [0.0])


def test_cli_writes_a_loadable_model_and_prints_the_lambdas(tmp_path: Path, capsys) -> None:
    _model().save_pretrained(tmp_path / "src")
    assert main(["--model", str(tmp_path / "src"), "--positions=-1,0,1,2", "--lambdas", "4,16,64,256",
                 "-o", str(tmp_path / "out"), "--dtype", "float16"]) == 0
    printed = capsys.readouterr().out
    assert "lambdas for the new points: [1.0, 4.0, 16.0, 64.0]" in printed
    stored = load_file(tmp_path / "out" / "model.safetensors")
    assert stored["intra.y_q_scale"].dtype == torch.float16
    moved = S2VC.from_pretrained(tmp_path / "out")
    src = S2VC.from_pretrained(tmp_path / "src")
    assert torch.allclose(moved.intra.y_q_scale[1:], src.intra.y_q_scale[:3], rtol=1e-3)  # float16 on disk
    assert math.isclose(moved.intra.y_q_scale[0, 0].item(),
                        (src.intra.y_q_scale[0, 0] ** 2 / src.intra.y_q_scale[1, 0]).item(), rel_tol=1e-3)


def test_cli_rejects_bad_arguments_before_writing_anything(tmp_path: Path) -> None:
    _model().save_pretrained(tmp_path / "src")
    for extra in (["--positions=0"], ["--positions=0,1,x,3"], ["--positions=0,1,2,3", "--lambdas", "1,2"]):
        with pytest.raises(SystemExit) as exc:
            main(["--model", str(tmp_path / "src"), "-o", str(tmp_path / "out"), *extra])
        assert exc.value.code == 2
        assert not (tmp_path / "out").exists()


def test_with_rate_points_changes_the_count_and_keeps_every_other_weight() -> None:
    model = _model()
    five = with_rate_points(model, [-1.0, 0.0, 0.5, 2.0, 3.0])
    assert five.config.num_rates == 5 and five.rate_names == ["q0", "q1", "q2", "q3", "q4"]
    old, new = model.state_dict(), five.state_dict()
    assert set(old) == set(new)
    per_rate = {k for k in new if k.endswith("y_q_scale") or ".bit_estimator_z." in k}
    assert len(per_rate) == 13  # two gains, f1..f4 h and b, f1..f3 a
    for key in set(new) - per_rate:
        assert torch.equal(new[key], old[key]), key
    for key in ("intra.y_q_scale", "inter.y_q_scale"):
        g = old[key]
        assert new[key].shape[0] == 5
        assert torch.allclose(new[key][1], g[0]) and torch.allclose(new[key][4], g[3])
        assert torch.allclose(new[key][2], (g[0] * g[1]).sqrt())
        assert torch.allclose(new[key][0], g[0] * g[0] / g[1])
    for key in (k for k in per_rate if ".bit_estimator_z." in k):
        assert [torch.equal(new[key][i], old[key][j]) for i, j in enumerate([0, 0, 1, 2, 3])] == [True] * 5
    y, x = np.mgrid[0:64, 0:64]
    clip = np.stack([np.stack([(x * 4 + t * 3) % 256, (y * 4) % 256, (x + y) * 2 % 256], -1) for t in range(2)])
    assert len(five.eval().estimate_bits(clip.astype(np.uint8), 4)) == 2  # the new top rate point codes
    with pytest.raises(ValueError, match="at least two positions"):
        with_rate_points(model, [0.0])


def test_cli_with_more_positions_writes_a_model_with_more_rate_points(tmp_path: Path, capsys) -> None:
    _model().save_pretrained(tmp_path / "src")
    assert main(["--model", str(tmp_path / "src"), "--positions=-1,0,1,2,3", "--lambdas", "4,16,64,256",
                 "-o", str(tmp_path / "out")]) == 0
    assert "lambdas for the new points: [1.0, 4.0, 16.0, 64.0, 256.0]" in capsys.readouterr().out
    moved = S2VC.from_pretrained(tmp_path / "out")
    assert moved.config.num_rates == 5 and moved.intra.y_q_scale.shape[0] == 5


def test_cli_overrides_change_the_decoder_layout_first_and_refuse_anything_else(tmp_path: Path) -> None:
    _model().save_pretrained(tmp_path / "src")
    layout = {"vae_decoder_widths": [8, 8, 8, 8], "vae_decoder_blocks": [1, 1, 1, 1]}
    assert main(["--model", str(tmp_path / "src"), "--positions=0,1,2,3,4", "-o", str(tmp_path / "out"),
                 "--overrides", json.dumps(layout)]) == 0
    moved = S2VC.from_pretrained(tmp_path / "out")
    assert list(moved.config.vae_decoder_widths) == [8, 8, 8, 8] and moved.config.num_rates == 5
    src = S2VC.from_pretrained(tmp_path / "src")
    assert torch.equal(moved.intra.y_q_scale[:4], src.intra.y_q_scale)  # positions 0..3 are the old points
    for bad in ("{not json", "[1, 2]", json.dumps({"intra_y_channels": 16})):
        with pytest.raises(SystemExit) as exc:
            main(["--model", str(tmp_path / "src"), "--positions=0,1,2,3", "-o", str(tmp_path / "bad"),
                  "--overrides", bad])
        assert exc.value.code == 2
        assert not (tmp_path / "bad").exists()
