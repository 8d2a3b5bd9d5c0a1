"""``python -m comparisons suite`` and ``suite-report``: the command-line side of `comparisons.suite`."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from comparisons.suite import SUITE_GPU_METRICS, SUITE_METRICS


def suite_metrics(choice: str, device: str = "cpu") -> tuple[list[str], dict[str, str]]:
    """``--metrics``: "suite" (the default set's available members; on a GPU with FloLPIPS-RAFT too), "default",
    "paper", "available" or names; and the default set's members left out here with why."""
    from comparisons.metrics import MetricError, metric_availability, metric_set

    if choice == "suite":
        reasons = metric_availability()
        wanted = SUITE_METRICS + (SUITE_GPU_METRICS if device.startswith("cuda") else ())
        return [m for m in wanted if reasons[m] is None], {m: reasons[m] for m in wanted if reasons[m]}
    try:
        return metric_set(choice, device), {}
    except MetricError as exc:
        raise SystemExit(f"error: {exc}") from None


def run_suite(args: argparse.Namespace) -> int:
    from comparisons.codecs import CODECS, codec_availability, get_codec
    from comparisons.suite.engines import EngineError, open_engine
    from comparisons.suite.execute import matched_follow_up, plan_jobs, run_jobs, suite_logger
    from comparisons.suite.jobs import ResumeError, Settings
    from comparisons.suite.sources import SourceError, load_sequences

    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    unknown = [c for c in codecs if c not in CODECS]
    if unknown:
        raise SystemExit(f"error: unknown codec(s) {', '.join(unknown)}; known: {', '.join(CODECS)}")
    if args.match_s2vc and "s2vc" not in codecs:
        raise SystemExit("error: --match-s2vc needs s2vc in --codecs")
    if args.anchor not in codecs:
        raise SystemExit(f"error: --anchor {args.anchor} is not among --codecs ({', '.join(codecs)})")
    reasons = codec_availability()
    for name in [c for c in codecs if reasons[c]]:
        print(f"codec {name} unavailable here, left out: {reasons[name]}")
    codecs = [c for c in codecs if not reasons[c]]
    from comparisons.metrics.nets import resolve_device

    try:
        device = resolve_device(args.device)  # this machine's; each worker resolves "auto" on its own
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    metrics, left_out = suite_metrics(args.metrics, device)
    for name, why in left_out.items():
        print(f"metric {name} (suite default) unavailable, left out: {why}")
    try:
        sequences = load_sequences(args.source, fps=args.fps, size=args.size)
    except SourceError as exc:
        raise SystemExit(f"error: {exc}") from None
    local = args.engine == "local" or not args.address
    settings = Settings(start=args.start, frames=args.frames, presets=tuple(sorted(args.preset.items())),
                        intra_period=args.intra_period, tolerance=args.tolerance, metrics=tuple(metrics),
                        checkpoint=args.checkpoint, device=args.device,
                        threads=max(1, (os.cpu_count() or 1) // args.workers) if local else None)
    rate_points = follow_up = None
    if args.match_s2vc:
        rate_points = len(get_codec("s2vc", checkpoint=args.checkpoint, device="cpu").model.rate_names)
        follow_up = matched_follow_up(codecs, rate_points)
    jobs = plan_jobs(sequences, codecs, args.out, settings, kbps=args.kbps, rate_points=rate_points)
    try:
        engine = open_engine(args.engine, args.workers, args.address)
    except EngineError as exc:
        raise SystemExit(f"error: {exc}") from None
    datasets = sorted({s.dataset for s in sequences})
    print(f"suite: {len(sequences)} sequences in {len(datasets)} dataset(s) ({', '.join(datasets)}), codecs "
          f"{', '.join(codecs)}, metrics {', '.join(metrics)}; {len(jobs)} jobs"
          f"{' (then the matched ones)' if follow_up else ''} on {engine.description}; log {args.out / 'suite.log'}")
    try:
        run = run_jobs(jobs, engine, suite_logger(args.out / "suite.log"), follow_up, args.retry_failed,
                       progress=not args.no_progress)
    except ResumeError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"{run.ran} jobs ran ({run.failed} failed, recorded), {run.skipped} already done, in {run.seconds:.1f} s "
          f"wall on {run.engine}")
    code = _report(args.out, args.anchor, not args.no_png)
    if run.not_run:
        print(f"error: {len(run.not_run)} job(s) lost with their worker (e.g. killed for memory): "
              f"{', '.join(run.not_run[:5])}{' ...' if len(run.not_run) > 5 else ''}; run the same command again "
              "to resume")
        return 1
    return code


def _report(out: Path, anchor: str, png: bool) -> int:
    from comparisons.suite.report import ReportError, build_report

    try:
        suite = build_report(out, anchor, png)
    except ReportError as exc:
        raise SystemExit(f"error: {exc}") from None
    for failure in suite["failures"]:
        print(f"failed: {failure['dataset']}/{failure['sequence']} {failure['codec']} @ "
              f"{failure['target_kbps'] or 0:g} kbps: {failure['error']}")
    if suite["png_error"]:
        print(f"plots: {suite['png_error']}; HTML written")
    for dataset, data in suite["datasets"].items():
        fid = data["fid"]
        if not fid["available"]:
            print(f"{dataset}: patch FID unavailable: {fid['reason']}")
            continue
        for metric, per_codec in fid["pooled"].items():
            points = "; ".join(f"{codec} " + ", ".join(f"{p['fid']:.2f}" for p in pts)
                               for codec, pts in per_codec.items())
            print(f"{dataset}: {metric} pooled over the dataset per rate point: {points}")
    if any(data["bd_rate"] for data in suite["datasets"].values()):
        print((out / "tables" / "bd_rate.md").read_text())
    else:
        print(f"no codec besides the anchor {anchor}: no BD-rates (mean values per rate point in "
              f"{out / 'tables' / 'rate_points.md'})")
    print(f"wrote {out / 'suite.json'}, tables in {out / 'tables'}, plots in {out / 'plots'}")
    return 0


def suite_report(args: argparse.Namespace) -> int:
    if not args.out.is_dir():
        raise SystemExit(f"error: {args.out}: no such folder")
    return _report(args.out, args.anchor, not args.no_png)
