"""Training clips `[T,3,crop,crop]` in [-1,1] from decoded videos and from still images with synthetic camera motion.

Every sample is a pure function of (seed, index), so a resumed run sees exactly the samples it would have seen.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from model.train.sources import ClipItem, check_not_eval

log = logging.getLogger(__name__)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 `[T,H,W,3]` -> float `[T,3,H,W]` in [-1,1]."""
    return torch.from_numpy(np.array(frames, copy=True)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Square `[T,3,S,S]` -> `[T,3,size,size]`, antialiased when shrinking."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def video_clip(frames: np.ndarray, num_frames: int, crop: int, rng: np.random.Generator,
               max_stride: int = 2, scale_range: tuple[float, float] = (1.0, 2.0)) -> torch.Tensor:
    """A random window of `num_frames` frames (random temporal stride), one random square crop, resized to `crop`."""
    t_total, h, w = frames.shape[:3]
    strides = [s for s in range(1, max_stride + 1) if (num_frames - 1) * s < t_total] or [1]
    stride = int(rng.choice(strides))
    span = (num_frames - 1) * stride + 1
    if span > t_total:
        raise ValueError(f"clip of {t_total} frames is shorter than {num_frames}")
    start = int(rng.integers(0, t_total - span + 1))
    max_scale = max(1.0, min(scale_range[1], h / crop, w / crop))
    scale = float(rng.uniform(min(scale_range[0], max_scale), max_scale))
    side = min(h, w, round(crop * scale))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    window = frames[start:start + span:stride, top:top + side, left:left + side]
    clip = _resize(to_tensor(window), crop)
    return clip.flip(-1) if rng.random() < 0.5 else clip


def motion_clip(image: np.ndarray, num_frames: int, crop: int, rng: np.random.Generator,
                max_speed: float = 3.0, max_zoom: float = 0.02, max_rotation: float = 0.5,
                scale_range: tuple[float, float] = (1.0, 2.0)) -> torch.Tensor:
    """A still image `[H,W,3]` seen by a camera on a smooth random path (sub-pixel pan, zoom, roll).

    The image is first shrunk by a random factor (antialiased), then each frame samples a `crop`-wide window
    whose centre moves with a random velocity and acceleration, whose scale changes by up to `max_zoom` per
    frame and which rolls by up to `max_rotation` degrees per frame; bicubic `grid_sample` renders it.
    """
    img = to_tensor(image[None])
    h, w = img.shape[-2:]
    max_scale = max(1.0, min(scale_range[1], h / (crop * 1.15), w / (crop * 1.15)))
    shrink = float(rng.uniform(min(scale_range[0], max_scale), max_scale))
    if shrink > 1.0:
        h, w = round(h / shrink), round(w / shrink)
        img = F.interpolate(img, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    t = np.arange(num_frames, dtype=np.float64)
    angle = rng.uniform(0, 2 * math.pi)
    speed, accel = rng.uniform(0, max_speed), rng.uniform(-0.1, 0.1, size=2) * max_speed
    path = np.stack([np.cos(angle), np.sin(angle)])[:, None] * speed * t + accel[:, None] * t**2 / 2  # [2,T] px
    zoom = np.exp(rng.uniform(-max_zoom, max_zoom) * t)
    roll = np.deg2rad(rng.uniform(-max_rotation, max_rotation) * t + rng.uniform(-max_rotation, max_rotation))
    half = crop / 2 * zoom * (np.abs(np.cos(roll)) + np.abs(np.sin(roll)))  # half-extent of the rotated window
    room = np.array([w, h]) - 2 * half.max()  # how far the window centre may travel in x and y
    extent = np.ptp(path, axis=1)
    path *= min(1.0, *(np.maximum(room, 0) / np.maximum(extent, 1e-6)))  # too long for this image: slow down
    lo, hi = path.min(axis=1) - half.max(), path.max(axis=1) + half.max()
    cx = path[0] + rng.uniform(-lo[0], max(w - hi[0], -lo[0]))
    cy = path[1] + rng.uniform(-lo[1], max(h - hi[1], -lo[1]))
    cos, sin = np.cos(roll) * zoom * crop, np.sin(roll) * zoom * crop
    theta = np.stack([
        np.stack([cos / w, -sin / w, 2 * cx / w - 1], axis=1),
        np.stack([sin / h, cos / h, 2 * cy / h - 1], axis=1),
    ], axis=1)
    grid = F.affine_grid(torch.from_numpy(theta).float(), [num_frames, 3, crop, crop], align_corners=False)
    clip = F.grid_sample(img.expand(num_frames, -1, -1, -1), grid, mode="bicubic", padding_mode="reflection",
                         align_corners=False).clamp(-1, 1)
    return clip.flip(-1) if rng.random() < 0.5 else clip


class ClipDataset(Dataset):
    """Random clips `[num_frames,3,crop,crop]` in [-1,1]; sample `i` is a pure function of (seed, i).

    A sample comes from a still image (synthetic motion) with probability `still_fraction` (when there are both
    kinds), otherwise from a video long enough for `num_frames`.
    """

    def __init__(self, items: list[ClipItem], num_frames: int, crop: int, seed: int = 0,
                 still_fraction: float = 0.3, max_stride: int = 2, scale_range: tuple[float, float] = (1.0, 2.0),
                 length: int = 1 << 30):
        for item in items:
            check_not_eval(item.key)
        small = [it.key for it in items if min(it.frames.shape[1:3]) < crop]
        if small:
            log.warning("skipping items smaller than the %dpx crop: %s", crop, ", ".join(small))
        items = [it for it in items if min(it.frames.shape[1:3]) >= crop]
        self.videos = [it for it in items if not it.still and it.frames.shape[0] >= num_frames]
        self.stills = [it for it in items if it.still or it.frames.shape[0] < num_frames]
        if not self.videos and not self.stills:
            raise ValueError(f"ClipDataset needs at least one item of at least {crop}px")
        self.num_frames, self.crop, self.seed = num_frames, crop, seed
        self.still_fraction = still_fraction if self.videos and self.stills else float(not self.videos)
        self.max_stride, self.scale_range, self.length = max_stride, tuple(scale_range), length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, index])
        if rng.random() < self.still_fraction:
            item = self.stills[int(rng.integers(len(self.stills)))]
            frame = item.frames[int(rng.integers(item.frames.shape[0]))]
            return motion_clip(frame, self.num_frames, self.crop, rng, scale_range=self.scale_range)
        item = self.videos[int(rng.integers(len(self.videos)))]
        return video_clip(item.frames, self.num_frames, self.crop, rng, self.max_stride, self.scale_range)


class StepSampler(Sampler[int]):
    """Endless sample indices for one process: batch b of rank r at step s reads `(s*world + r)*batch + 0..batch-1`.

    Starting at `start_step` makes a resumed run continue with exactly the samples it would have read.
    """

    def __init__(self, batch_size: int, start_step: int = 0, rank: int = 0, world_size: int = 1):
        self.batch_size, self.start_step, self.rank, self.world_size = batch_size, start_step, rank, world_size

    def __iter__(self):
        step = self.start_step
        while True:
            first = (step * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)
            step += 1
