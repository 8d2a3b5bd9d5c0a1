"""`python -m app [--checkpoint DIR] [--host H] [--port P]`: start S2VC Studio in the browser."""
from __future__ import annotations

import argparse
import dataclasses
import os

from app.settings import Limits, Settings


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
    parser.add_argument("--max-frames", type=int, default=env.limits.max_frames)
    parser.add_argument("--max-pixels", type=int, default=env.limits.max_pixels)
    parser.add_argument("--max-file-mb", type=int, default=env.limits.max_file_mb)
    parser.add_argument("--concurrency", type=int, default=env.concurrency,
                        help="coding jobs run at once across all users (the rest wait in the queue)")
    parser.add_argument("--session-ttl", type=int, default=env.session_ttl_s,
                        help="seconds after which an idle session's files are deleted")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(
        env, checkpoint=args.checkpoint, model_preset=args.preset, device=args.device,
        limits=Limits(args.max_frames, args.max_pixels, args.max_file_mb), concurrency=args.concurrency,
        session_ttl_s=args.session_ttl)
    return settings, args


def main(argv: list[str] | None = None) -> None:
    from app.model_slot import ModelSlot
    from app.ui import build, launch_options

    settings, args = parse_args(argv)
    slot = ModelSlot(settings.checkpoint, settings.model_preset, settings.device)
    demo = build(settings, slot)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=4)  # light events; coding has its own limit
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=f"{settings.limits.max_file_mb}mb",
                **launch_options(settings))


if __name__ == "__main__":
    main()
