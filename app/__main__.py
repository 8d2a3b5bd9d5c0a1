"""`python -m app [--checkpoint DIR] [--host H] [--port P]`: start S2VC Studio in the browser."""
from __future__ import annotations

import argparse
import dataclasses
import os

from app.model_slot import is_official, pick_device
from app.settings import GPU_LIMITS, Limits, Settings, default_limits


def parse_args(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    """Settings from the environment (`S2VC_*`), overridden by the command line."""
    env = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("--checkpoint", default=env.checkpoint,
                        help="S2VC checkpoint folder (default: $S2VC_CHECKPOINT, else the bundled default model)")
    parser.add_argument("--preset", default=env.model_preset, help="model preset when no checkpoint is given")
    parser.add_argument("--device", default=env.device, help="auto (GPU when present), cpu or cuda[:N]")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--max-frames", type=int, default=None,
                        help=f"(default {Limits.max_frames}, or $S2VC_MAX_FRAMES)")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help=f"per frame (default {Limits.max_pixels:,} = 832x480; 1920x1080 for the official "
                             f"model on CUDA; or $S2VC_MAX_PIXELS)")
    parser.add_argument("--max-file-mb", type=int, default=None,
                        help=f"(default {Limits.max_file_mb}, {GPU_LIMITS.max_file_mb} for the official model on "
                             "CUDA; or $S2VC_MAX_FILE_MB)")
    parser.add_argument("--open", metavar="PATH", default=None,
                        help="open a saved run in every new page: the .zip the app exports, or a folder written by "
                             "`python -m comparisons run` (no model needed)")
    parser.add_argument("--sequence", default=None,
                        help="with --open, which run when PATH holds several (their folders inside PATH)")
    parser.add_argument("--concurrency", type=int, default=env.concurrency,
                        help="coding jobs run at once across all users (the rest wait in the queue)")
    parser.add_argument("--session-ttl", type=int, default=env.session_ttl_s,
                        help="seconds after which an idle session's files are deleted")
    args = parser.parse_args(argv)
    base = default_limits(pick_device(args.device), is_official(args.checkpoint, args.preset)).with_env()
    limits = Limits(args.max_frames or base.max_frames, args.max_pixels or base.max_pixels,
                    args.max_file_mb or base.max_file_mb)
    if args.open:
        from app.handlers import saved_run_names

        if not os.path.exists(args.open):
            parser.error(f"--open {args.open}: no such file or folder")
        runs = saved_run_names(args.open)
        if not runs:
            parser.error(f"--open {args.open}: not a saved run (no results.json in it)")
        if len(runs) > 1 and args.sequence not in runs:
            parser.error(f"--open {args.open} holds {len(runs)} runs; pick one with --sequence: {', '.join(runs)}")
    settings = dataclasses.replace(
        env, checkpoint=args.checkpoint, model_preset=args.preset, device=args.device, limits=limits,
        concurrency=args.concurrency, session_ttl_s=args.session_ttl, open_path=args.open,
        open_sequence=args.sequence)
    return settings, args


def use_temp_root(settings: Settings) -> None:
    """Make the app's temp root Gradio's file cache too (before the page is built): Gradio then serves the
    session folders' files where they are instead of copying them into a cache that outlives the sessions."""
    os.environ["GRADIO_TEMP_DIR"] = str(settings.temp_root)


def main(argv: list[str] | None = None) -> None:
    from app.model_slot import ModelSlot

    settings, args = parse_args(argv)
    use_temp_root(settings)
    from app.ui import build, launch_options

    slot = ModelSlot(settings.checkpoint, settings.model_preset, settings.device)
    demo = build(settings, slot)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=4)  # light events; coding has its own limit
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=f"{settings.limits.max_file_mb}mb",
                **launch_options(settings))


if __name__ == "__main__":
    main()
