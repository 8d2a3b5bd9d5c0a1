"""Move the rate points of a trained variable-rate model before fine-tuning it at new lambdas.

A variable-rate model keeps one learned y gain per rate point (`*.y_q_scale` [R, C, 1, 1]) and one factorized
z density per rate point (`BitEstimator` with `qp_num == R`). `respace` gives rate point i the gains at a
fractional *position* p_i on the old rate axis (0 = old q0 ... R-1 = old top point): the log-gains are
interpolated linearly between neighbouring points and extrapolated with the end segment's slope outside
[0, R-1]. The z densities are taken from the nearest old point. The lambdas for training at the new points are
interpolated the same way (log-linearly), so the model starts close to where its new lambdas pull it.

    python -m model.train.respace --model assets/models/s2vc-tiny --positions=-0.8,0.3,1.5,3 \
        --lambdas 16,56,200,1600 -o runs/respaced [--dtype float16]

With a different number of positions than the model has rate points, the result is a model with one rate point
per position (named q0, q1, ...): every other weight is kept, the per-rate tensors are built as above.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

import torch

from model.entropy_models import BitEstimator
from model.train.loop import with_overrides
from model.train.merge import load_any


def _segment(position: float, count: int) -> tuple[int, float]:
    """The old segment [i, i+1] used for `position`, and the fraction along it (may be <0 or >1 at the ends)."""
    i = min(max(math.floor(position), 0), count - 2)
    return i, position - i


def interpolate_log(values: torch.Tensor, positions: Sequence[float]) -> torch.Tensor:
    """Rows of positive `values` [R, ...] at fractional `positions`, log-linear (extrapolated at the ends)."""
    if values.shape[0] < 2:
        raise ValueError("respacing needs a model with at least two rate points")
    if (values <= 0).any():
        raise ValueError("log-linear interpolation needs positive values")
    logs = values.double().log()
    rows = []
    for p in positions:
        i, f = _segment(float(p), values.shape[0])
        rows.append(torch.exp(logs[i] + f * (logs[i + 1] - logs[i])))
    return torch.stack(rows).to(values.dtype)


def respace(model: torch.nn.Module, positions: Sequence[float]) -> list[str]:
    """Move `model`'s rate points to `positions` in place; returns the names of the tensors changed."""
    num_rates = model.config.num_rates
    if num_rates < 2:
        raise ValueError("respacing needs a variable-rate model (at least two rate points)")
    if len(positions) != num_rates:
        raise ValueError(f"need {num_rates} positions (one per rate point {list(model.config.rate_names)}), "
                         f"got {len(positions)}")
    changed: list[str] = []
    nearest = [min(max(math.floor(float(p) + 0.5), 0), num_rates - 1) for p in positions]  # ties go up
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("y_q_scale"):
                param.copy_(interpolate_log(param.data.clamp_min(1e-3), positions))
                changed.append(name)
        for mod_name, module in model.named_modules():
            if isinstance(module, BitEstimator) and module.qp_num == num_rates:
                for name, param in module.named_parameters():
                    param.copy_(param.data[nearest])
                    changed.append(f"{mod_name}.{name}")
    model.invalidate_hash()
    return changed


def with_rate_points(model: torch.nn.Module, positions: Sequence[float]) -> torch.nn.Module:
    """A copy of `model` with one rate point per position (named q0, q1, ...), its per-rate tensors placed at
    `positions` on the old rate axis as `respace` does, every other weight unchanged."""
    from model.codec import S2VC

    old_rates = model.config.num_rates
    if old_rates < 2:
        raise ValueError("respacing needs a variable-rate model (at least two rate points)")
    if len(positions) < 2:
        raise ValueError(f"a variable-rate model needs at least two positions, got {len(positions)}")
    count = len(positions)
    config = model.config.replace(num_rates=count, rate_names=tuple(f"q{i}" for i in range(count)))
    new = S2VC(config)
    nearest = [min(max(math.floor(float(p) + 0.5), 0), old_rates - 1) for p in positions]  # ties go up
    per_rate = {f"{name}.{leaf}" for name, module in model.named_modules()
                if isinstance(module, BitEstimator) and module.qp_num == old_rates
                for leaf, _ in module.named_parameters()}
    state = {}
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if name.endswith("y_q_scale"):
                value = interpolate_log(value.clamp_min(1e-3), positions)
            elif name in per_rate:
                value = value[nearest]
            state[name] = value
    new.load_state_dict(state, strict=True)
    new.invalidate_hash()
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train.respace", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="save_pretrained folder or training checkpoint folder")
    parser.add_argument("--positions", required=True, help="comma-separated, one per rate point, low rate first")
    parser.add_argument("--lambdas", help="the lambdas the model was trained with (comma-separated): prints the "
                                          "interpolated lambdas for the new points")
    parser.add_argument("--overrides", metavar="JSON",
                        help="config fields to change first (model.train.loop.with_overrides), e.g. "
                             "'{\"vae_decoder_widths\": [], \"vae_decoder_blocks\": []}' for TAEF2's own decoder")
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    args = parser.parse_args(argv)
    try:
        positions = [float(v) for v in args.positions.split(",")]
        old = [float(v) for v in args.lambdas.split(",")] if args.lambdas else None
    except ValueError as exc:
        parser.error(f"--positions and --lambdas take comma-separated numbers ({exc})")
    try:
        overrides = json.loads(args.overrides) if args.overrides else {}
    except json.JSONDecodeError as exc:
        parser.error(f"--overrides is not JSON ({exc})")
    if not isinstance(overrides, dict):
        parser.error("--overrides must be a JSON object of config fields")
    model = load_any(args.model)
    if overrides:
        try:
            model = with_overrides(model, overrides)
        except (TypeError, ValueError) as exc:
            parser.error(f"--overrides: {exc}")
    if old is not None and len(old) != model.config.num_rates:
        parser.error(f"--lambdas needs {model.config.num_rates} values, got {len(old)}")
    try:
        if len(positions) == model.config.num_rates:
            changed = len(respace(model, positions))
        else:
            model = with_rate_points(model, positions)
            changed = 0
    except ValueError as exc:
        parser.error(str(exc))
    model.save_pretrained(args.out, dtype=getattr(torch, args.dtype))
    what = f"{changed} per-rate tensors respaced" if changed else f"{model.config.num_rates} rate points placed"
    print(f"{what} at positions {positions}; written to {args.out}")
    if old is not None:
        new = [round(float(v), 2) for v in interpolate_log(torch.tensor(old), positions)]
        print(f"lambdas for the new points: {json.dumps(new)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
