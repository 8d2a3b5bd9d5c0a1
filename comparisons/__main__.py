"""Command line: ``python -m comparisons {run,suite,suite-report,evaluate,bdrate,bench,list} ...`` (``--help`` on
each)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

RUN_EXAMPLE = ("python -m comparisons run --clip clip.mp4 --codecs s2vc,x265,vvenc --kbps 50,100,200 "
               "--frames 32 --out /tmp/cmp")
SUITE_EXAMPLE = ("python -m comparisons suite comparisons/manifests/shared_data.yaml --codecs x265,vvenc "
                 "--preset x265=medium,vvenc=medium --kbps 100,250,600 --frames 8 --workers 2 --out /tmp/suite")


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def _presets(text: str) -> dict[str, str]:
    try:
        return dict(item.split("=", 1) for item in text.split(",") if item)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected codec=preset[,codec=preset], got {text!r}") from None


def _coding_arguments(p: argparse.ArgumentParser, metrics: str, device: str) -> None:
    """The coding and measuring flags `run` and `suite` share (same names, same meaning)."""
    p.add_argument("--codecs", default="x265,vvenc", help="comma-separated: s2vc, x265, vvenc, svtav1, x264")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--kbps", type=_floats, help="target bitrates, e.g. 50,100,200")
    target.add_argument("--match-s2vc", action="store_true",
                        help="code S2VC at every rate point, then the other codecs at S2VC's real bitrates")
    p.add_argument("--start", type=int, default=0, help="first frame (0-based)")
    p.add_argument("--frames", type=int, default=None, help="number of frames (default: all)")
    p.add_argument("--fps", type=float, default=None, help="frame rate (needed for PNG folders and raw .yuv)")
    p.add_argument("--size", type=_size, default=None, help="WIDTHxHEIGHT of a raw .yuv")
    p.add_argument("--preset", type=_presets, default={}, help="per codec, e.g. x265=medium,vvenc=medium")
    p.add_argument("--intra-period", type=int, default=None, help="frames between intra frames (default: one)")
    p.add_argument("--tolerance", type=float, default=0.05, help="bitrate tolerance (fraction, default 0.05)")
    sets = {"default": "'default' (default: the set for --device, see `list`), 'paper' or 'available'",
            "suite": "'suite' (default: the suite's set), 'paper' or 'available'"}
    p.add_argument("--metrics", default=metrics, help=f"comma-separated names, or {sets[metrics]}")
    p.add_argument("--no-png", action="store_true", help="write HTML plots only")
    p.add_argument("--checkpoint", default=None, help="S2VC checkpoint (default: the bundled model)")
    p.add_argument("--device", default=device, help="where S2VC and the learned metrics run: auto (a GPU when "
                                                   "present, default), cpu or cuda[:N]")


def _suite_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--anchor", default="x265", help="BD-rate anchor codec (default x265)")
    p.add_argument("--workers", type=int, default=1, help="jobs at once (default 1: in this process)")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local process pool (default) or Dask distributed")
    p.add_argument("--address", default=None, help="Dask scheduler, e.g. tcp://host:8786 (default: a local cluster "
                                                  "of --workers processes)")
    p.add_argument("--retry-failed", action="store_true", help="re-run jobs whose record is a failure")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the log is written regardless)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m comparisons", description="S2VC vs HEVC/VVC comparisons")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="encode a clip with each codec at each bitrate and measure", epilog=RUN_EXAMPLE)
    run.add_argument("--clip", required=True, help="video file, .y4m, raw .yuv (with --size, --fps) or PNG folder")
    _coding_arguments(run, metrics="default", device="auto")
    run.add_argument("--out", required=True, type=Path, help="output folder (results.json, CSV, plots, bitstreams)")
    suite = sub.add_parser("suite", help="the protocol over many sequences: datasets, jobs, resume, tables",
                           epilog=SUITE_EXAMPLE)
    suite.add_argument("source", type=Path, help="folder of datasets (sub-folders of sequences) or a manifest "
                                                 "(.json/.yaml); see comparisons/README.md")
    _coding_arguments(suite, metrics="suite", device="auto")
    suite.add_argument("--out", required=True, type=Path, help="output folder (records, suite.json, tables, plots)")
    _suite_arguments(suite)
    report = sub.add_parser("suite-report", help="rebuild a suite's tables and plots from its records")
    report.add_argument("out", type=Path)
    report.add_argument("--anchor", default="x265", help="BD-rate anchor codec (default x265)")
    report.add_argument("--no-png", action="store_true", help="write HTML plots only")
    ev = sub.add_parser("evaluate", help="the S2VC release's evaluation protocol on folders of PNG frames",
                        epilog="python -m comparisons evaluate GT_DIR RECON_DIR --out OUT")
    ev.add_argument("gt_dir", type=Path, help="ground-truth PNG frames (one sequence) or sub-folders of them (a "
                                              "dataset)")
    ev.add_argument("recon_dir", type=Path, help="reconstructed PNG frames, laid out as GT_DIR")
    ev.add_argument("--out", required=True, type=Path, help="output folder (detail/, <dataset>_detail, _summary)")
    ev.add_argument("--metrics", default="paper",
                    help="comma-separated, or 'paper' (default: the release's psnr_rgb, ms_ssim_rgb, lpips_alex, "
                         "dists, flolpips_raft, fid_patch256; name fid_patch128 instead for small videos)")
    ev.add_argument("--device", default="auto", help="auto (GPU when present, default), cpu or cuda[:N]")
    ev.add_argument("--dataset", default=None, help="dataset name in the file names (default: GT_DIR's name)")
    ev.add_argument("--recon-subdir", default=None,
                    help="read sequence S from RECON_DIR/S/SUBDIR (the release's <seq>/<qp_name> layout)")
    bd = sub.add_parser("bdrate", help="BD-rate / BD-quality table from a results.json")
    bd.add_argument("results", type=Path)
    bd.add_argument("--anchor", default="x265")
    bd.add_argument("--metric", action="append", default=None, help="metric name (repeatable; default: all)")
    bench = sub.add_parser("bench", help="metric throughput (frames/s) on CPU")
    bench.add_argument("--size", type=_size, default=(416, 240))
    bench.add_argument("--frames", type=int, default=8)
    listing = sub.add_parser("list", help="codecs and metrics, why any is unavailable, each metric's measured cost")
    listing.add_argument("--measure", nargs="?", const="available", default=None, metavar="NAMES",
                         help="first time each available metric (or the comma-separated NAMES) on 1080p frames here")
    return p


def metric_names(choice: str, device: str) -> list[str]:
    """`comparisons.metrics.metric_set`, an unknown name ending the command with one line."""
    from comparisons.metrics import MetricError, metric_set

    try:
        return metric_set(choice, device)
    except MetricError as exc:
        raise SystemExit(f"error: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    from comparisons.codecs import CODECS, get_codec
    from comparisons.metrics.nets import resolve_device
    from comparisons.plots import save_figures
    from comparisons.results import write_csv
    from comparisons.runner import run_comparison
    from model.video_io import read_video

    names = [c.strip() for c in args.codecs.split(",") if c.strip()]
    unknown = [c for c in names if c not in CODECS]
    if unknown:
        raise SystemExit(f"error: unknown codec(s) {', '.join(unknown)}; known: {', '.join(CODECS)}")
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    metrics = metric_names(args.metrics, device)
    frames, fps = read_video(args.clip, start=args.start, frames=args.frames, size=args.size, fps=args.fps)
    codecs = []
    for name in names:
        options = {"preset": args.preset.get(name)} if name != "s2vc" else {"checkpoint": args.checkpoint,
                                                                              "device": device}
        if name != "s2vc":
            options |= {"intra_period": args.intra_period, "tolerance": args.tolerance}
        codecs.append(get_codec(name, **options))
    print(f"clip {args.clip}: {len(frames)} frames {frames.shape[2]}x{frames.shape[1]} @ {fps:g} fps; metrics "
          f"{', '.join(metrics)} on {device}")
    clip = {"path": str(args.clip), "start": args.start}
    if args.match_s2vc:
        results = _run_matched(frames, fps, codecs, args.out, metrics, clip, device)
    else:
        results = run_comparison(frames, fps, codecs, args.kbps, args.out, metrics, clip=clip, device=device)
    summary, _ = write_csv(results, args.out)
    _, png_error = save_figures(results, args.out / "plots", png=not args.no_png)
    if png_error:
        print(f"plots: {png_error}; HTML written")
    for name, why in results["unavailable"]["codecs"].items():
        print(f"codec {name} unavailable: {why}")
    for failure in results["failures"]:
        print(f"failed: {failure['codec']} @ {failure['target_kbps']:g} kbps: {failure['error']}")
    for name, why in results["unavailable"]["metrics"].items():
        print(f"metric {name} unavailable: {why}")
    _print_records(results)
    print(f"wrote {args.out / 'results.json'}, {summary}, plots in {args.out / 'plots'}")
    return 0


def _run_matched(frames, fps: float, codecs: list, out: Path, metrics: list[str], clip: dict,
                 device: str) -> dict:
    """S2VC at each of its rate points (target = that rate point's estimate + 2%, which selects exactly it), then
    every other codec at the real bitrates S2VC reached; one results.json holds both.

    The estimates here code the whole clip: a prefix estimate can fall short of the real file by more than 2%, and
    the encoder would then fall back to the next lower rate point, so one rate point would be coded twice."""
    from comparisons.codecs.s2vc import MATCH_MARGIN
    from comparisons.results import save_results
    from comparisons.runner import run_comparison

    s2vc = next((c for c in codecs if c.name == "s2vc"), None)
    if s2vc is None:
        raise SystemExit("error: --match-s2vc needs s2vc in --codecs")
    why = s2vc.availability()
    if why:
        raise SystemExit(f"error: {why}")
    s2vc.estimate_frames = None
    targets = [MATCH_MARGIN * kbps for kbps in s2vc.rate_estimates(frames, fps)]
    first = run_comparison(frames, fps, [s2vc], targets, out, metrics, clip=clip, device=device)
    matched = sorted({round(r["kbps"], 3) for r in first["records"]})  # rate points may land on one bitrate
    rest = [c for c in codecs if c is not s2vc]
    results = run_comparison(frames, fps, rest, matched, out, metrics, clip=clip, device=device)
    results["records"] = first["records"] + results["records"]
    results["failures"] = first["failures"] + results["failures"]
    results["test_conditions"]["targets_kbps"] = {"s2vc": targets, "others (S2VC's real kbps)": matched}
    save_results(results, out / "results.json")
    return results


def _print_records(results: dict) -> None:
    import pandas as pd

    from comparisons.results import records_table

    table = records_table(results).drop(columns=["label", "bits"])
    with pd.option_context("display.max_columns", None, "display.width", 250, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))


def _bdrate(args: argparse.Namespace) -> int:
    import pandas as pd

    from comparisons.bdrate import BDRateError, bd_table
    from comparisons.results import load_results

    try:
        table = bd_table(load_results(args.results), args.anchor, args.metric)
    except (BDRateError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    with pd.option_context("display.width", 250, "display.max_colwidth", 200, "display.float_format", "{:.3f}".format):
        print(table.drop(columns=["variant"]).to_string(index=False))
    for metric in dict.fromkeys(table["metric"]):
        print(f"  {metric}: {table[table.metric == metric]['variant'].iloc[0]}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from comparisons.bench import bench_metrics

    import torch

    w, h = args.size
    print(f"metric throughput on CPU, {w}x{h}, {args.frames} frames, torch threads {torch.get_num_threads()}")
    for row in bench_metrics(w, h, args.frames):
        fps = f"{row['fps']:8.2f} frames/s" if row["fps"] else "       -"
        print(f"  {row['metric']:<22} {fps}  {row['note']}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from comparisons.bench import COST_SIZE, machine, measure_costs, measured_costs
    from comparisons.codecs import codec_availability
    from comparisons.metrics import CPU_DEFAULT_METRICS, GPU_DEFAULT_METRICS, METRICS, metric_availability
    from comparisons.suite import SUITE_GPU_METRICS, SUITE_METRICS

    if args.measure:
        names = None if args.measure == "available" else args.measure.split(",")
        print(f"measuring metric cost per {COST_SIZE[0]}x{COST_SIZE[1]} frame on this machine (minutes) ...")
        costs = measure_costs(names)
    else:
        costs = measured_costs()
    for name, why in codec_availability().items():
        print(f"codec  {name:<22} {'available' if why is None else 'unavailable: ' + why}")
    for name, why in metric_availability().items():
        cost = costs.get(name)
        timing = (f"{cost['seconds_per_frame']:.3g} s per {COST_SIZE[1]}p frame (measured {cost['measured']}, "
                  f"load average {cost['load']})"
                  if cost else "cost not measured here (list --measure)") if why is None else ""
        state = "available" if why is None else "unavailable: " + why
        print(f"metric {name:<22} {state}  [{METRICS[name].variant}]{'  ' + timing if timing else ''}")
    print(f"metric costs: CPU, one synthetic {COST_SIZE[0]}x{COST_SIZE[1]} clip, on {machine()}")
    measured = [m for m in CPU_DEFAULT_METRICS if m in costs]
    if measured:
        print(f"the CPU default set measured here: {sum(costs[m]['seconds_per_frame'] for m in measured):.3g} s per "
              f"{COST_SIZE[1]}p frame ({', '.join(measured)})")
    print(f"run default metrics (a stated choice, see comparisons/metrics/__init__.py): on a CPU "
          f"{', '.join(CPU_DEFAULT_METRICS)}; on a GPU {', '.join(GPU_DEFAULT_METRICS)} (the available ones)")
    print(f"suite default metrics (a stated choice, see comparisons/suite/__init__.py): {', '.join(SUITE_METRICS)}"
          f"{'' if not SUITE_GPU_METRICS else ', and on a GPU ' + ', '.join(SUITE_GPU_METRICS)}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from comparisons.evaluate import FID_METRICS, EvaluateError, evaluate, find_sequences
    from comparisons.metrics.nets import resolve_device

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    metrics = metric_names(args.metrics, device)
    if sum(m in FID_METRICS for m in metrics) > 1:
        raise SystemExit(f"error: name one patch FID ({' or '.join(FID_METRICS)})")
    try:
        sequences = find_sequences(args.gt_dir, args.recon_dir, args.recon_subdir)
        dataset = args.dataset or args.gt_dir.resolve().name
        print(f"evaluate: dataset {dataset}, {len(sequences)} sequence(s), metrics {', '.join(metrics)} on {device}")
        paths = evaluate(sequences, dataset, args.out, metrics, device)
    except (EvaluateError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print((args.out / f"{dataset}_summary.md").read_text())
    print(f"wrote {len(paths)} files under {args.out} (variants and anything missing: {dataset}_variants.md)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from model.video_io import VideoReadError

    try:
        if args.command in ("suite", "suite-report"):
            from comparisons.suite.cli import run_suite, suite_report

            return {"suite": run_suite, "suite-report": suite_report}[args.command](args)
        return {"run": _run, "evaluate": _evaluate, "bdrate": _bdrate, "bench": _bench,
                "list": _list}[args.command](args)
    except VideoReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
