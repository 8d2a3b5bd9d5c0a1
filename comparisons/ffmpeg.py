"""The FFmpeg binary every external codec and VMAF run through: the static build of the `imageio-ffmpeg` wheel."""
from __future__ import annotations

import functools
import re
import shlex
import subprocess


class FFmpegError(RuntimeError):
    """An FFmpeg command failed; the message is one line with the tool's last words."""


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the FFmpeg binary shipped in the imageio-ffmpeg wheel."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """e.g. ``ffmpeg n9.0.2-17-g2a571b6068-20260930``."""
    first = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    match = re.match(r"ffmpeg version (\S+)", first)
    return f"ffmpeg {match.group(1) if match else first}"


@functools.lru_cache(maxsize=None)
def has_encoder(name: str) -> bool:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.startswith(" "))


@functools.lru_cache(maxsize=None)
def has_filter(name: str) -> bool:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-filters"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.startswith(" "))


def run(cmd: list[str], what: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Run an FFmpeg command; raise FFmpegError naming `what` with the last stderr line on failure."""
    done = subprocess.run(cmd, input=stdin, capture_output=True)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise FFmpegError(f"{what} failed (exit {done.returncode}): {lines[-1].strip() if lines else 'no message'}")
    return done


def command_line(cmd: list[str]) -> str:
    """The command as one shell-quoted line, with the binary named `ffmpeg`."""
    return shlex.join(["ffmpeg", *cmd[1:]] if cmd and cmd[0] == ffmpeg_exe() else cmd)
