"""The training loop: one code path for a single CPU process and for many GPUs under `accelerate launch`.

Each step draws a clip batch `[B,T,3,H,W]` and a random rate index per sample, codes the clip through
`S2VC.forward_frames` (I-frame, then P-frames through the decoded-picture buffer), and minimises the mean over the
trained frames of lambda_rate * D + bpp. Checkpoints (model, optimiser, scheduler, step, every RNG) are written
every `checkpoint_every` steps and at exit; a run restarted with the same `out_dir` resumes from the latest one.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from model.train.budget import TimeBudget
from model.train.config import P_STAGES, VAE_DECODER_PREFIX, TrainConfig, is_trainable
from model.train.data import ClipDataset, StepSampler
from model.train.losses import PatchDiscriminator, RateDistortionLoss, discriminator_loss
from model.train.scratch_init import init_one_step_for_scratch
from model.train.sources import load_sources, split_items

if TYPE_CHECKING:
    from model.config import S2VCConfig

log = logging.getLogger(__name__)
CHECKPOINT_PREFIX = "step_"


class ClipCoder(nn.Module):
    """The unit that DDP wraps: `forward(frames, rate)` = `S2VC.forward_frames` with this stage's settings, or,
    in the `decoder` stage, the decoder applied to the latents it learns from."""

    def __init__(self, model: nn.Module, decode: bool, reset_interval: int | None, iframe_grad: bool,
                 decoder_input: str | None = None):
        super().__init__()
        self.model = model
        self.decode, self.reset_interval, self.iframe_grad = decode, reset_interval, iframe_grad
        self.decoder_input = decoder_input

    def forward(self, frames: torch.Tensor, rate: torch.Tensor) -> list[dict]:
        if self.decoder_input is not None:
            return self.decode_latents(frames, rate)
        return self.model.forward_frames(
            frames, rate, decode=self.decode, reset_interval=self.reset_interval, iframe_grad=self.iframe_grad
        )

    def decode_latents(self, frames: torch.Tensor, rate: torch.Tensor) -> list[dict]:
        """Decoder stage: the autoencoder's own latents of every frame, or the generator's x0 latents of the clip
        coded through the buffers (computed without autograd), each decoded with autograd on."""
        vae = self.model.vae
        with torch.no_grad():
            if self.decoder_input == "autoencoder":
                zero = torch.zeros(frames.shape[0], device=frames.device)
                outs = [{"frame_type": "I", "latent_hat": z, "latent": z, "bits": zero, "likelihoods": {}}
                        for z in (vae.encode(frames[:, t]) for t in range(frames.shape[1]))]
            else:
                outs = self.model.forward_frames(frames, rate, decode=False, reset_interval=self.reset_interval,
                                                 iframe_grad=False)
        return [{**o, "x_hat": vae.decode(o["latent_hat"])} for o in outs]


class TrainState:
    """The step counter, saved with every checkpoint through `accelerator.register_for_checkpointing`."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


# ----------------------------------------------------------------------------------------------- model


def build_model(cfg: TrainConfig) -> nn.Module:
    """The S2VC model of `cfg`, from `init_from` when given, else fresh (scratch initialisation of the one-step
    generator) with the pretrained autoencoder loaded. `model_overrides` apply on top of what `init_from` holds."""
    from model.checkpoints import is_pretrained_folder
    from model.codec import S2VC

    source = Path(cfg.init_from) if cfg.init_from else None
    if source is not None and not (source / "model.safetensors").is_file():
        raise FileNotFoundError(f"init_from {source}: no model.safetensors there (a save_pretrained folder or a "
                                "checkpoint folder of an earlier run)")
    if source is not None and is_pretrained_folder(source):  # holds every weight: no TAEF2 files needed
        if cfg.model_config:
            raise ValueError("init_from a save_pretrained folder takes its own config; drop model_config")
        model = S2VC.from_pretrained(source)
        return with_overrides(model, cfg.model_overrides) if cfg.model_overrides else model
    saved = checkpoint_model_config(source) if source is not None else None  # what a checkpoint's run trained
    model = S2VC(model_config_of(cfg) if saved is None else saved)  # with `saved`, the overrides come on top
    if source is not None:  # an accelerate checkpoint folder of an earlier run
        from safetensors.torch import load_file

        state = load_file(str(source / "model.safetensors"))
        model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()}, strict=True)
        return with_overrides(model, cfg.model_overrides) if saved is not None and cfg.model_overrides else model
    model.vae.load_weights()
    init_one_step_for_scratch(model)
    return model


def model_config_of(cfg: TrainConfig) -> S2VCConfig:
    """The config of the model a run of `cfg` trains: its init_from's (a save_pretrained folder's config.json, or
    what a checkpoint folder's run trained), else model_config or the preset; `model_overrides` on top."""
    from model.checkpoints import is_pretrained_folder
    from model.config import S2VCConfig, preset

    source = Path(cfg.init_from) if cfg.init_from else None
    if source is not None and is_pretrained_folder(source):
        base = S2VCConfig.load(source / "config.json")
    elif source is not None and (saved := checkpoint_model_config(source)) is not None:
        base = saved
    else:
        base = S2VCConfig.load(cfg.model_config) if cfg.model_config else preset(cfg.model_preset)
    return S2VCConfig.from_dict({**base.to_dict(), **cfg.model_overrides})  # checks names, lists -> tuples


def checkpoint_model_config(folder: Path) -> S2VCConfig | None:
    """The config of the model a run's checkpoint folder (out_dir/checkpoints/step_N) holds, from that run's
    train_config.json; None when the folder has no run beside it."""
    run_config = folder.parent.parent / "train_config.json"
    return model_config_of(TrainConfig.load(run_config)) if run_config.is_file() else None


# zero-initialised additions: config.inter_latent_input's branch, config.inter_x0_skip's gain
ADDED_AT_ZERO = ("inter.latent_emb.", "inter.x0_skip")


def with_overrides(model: nn.Module, overrides: dict) -> nn.Module:
    """`model` rebuilt with some config fields changed, keeping every weight whose name and shape still fit.

    Only the autoencoder's decoder may change shape (a new decoder layout of one's own starts from a fresh
    initialisation and is trained by the `decoder` stage; TAEF2's layout gets TAEF2's pretrained decoder, from
    `model.taesd.taef2_dir()`), and weights that start at zero may be added (`ADDED_AT_ZERO`: the model computes
    what it did); any other mismatch is an error.
    """
    from model.codec import S2VC
    from model.config import S2VCConfig

    config = S2VCConfig.from_dict({**model.config.to_dict(), **overrides})
    new = S2VC(config)
    old, fresh = model.state_dict(), new.state_dict()
    differ = sorted(k for k in set(old) | set(fresh) if k not in old or k not in fresh or old[k].shape != fresh[k].shape)
    added = [k for k in differ if k not in old and k.startswith(ADDED_AT_ZERO)]
    if outside := [k for k in differ if not k.startswith(VAE_DECODER_PREFIX) and k not in added]:
        raise ValueError(f"config overrides {sorted(overrides)} change weights outside the decoder: {outside[:8]}")
    before, after = _decoder_layout(model.config), _decoder_layout(config)
    new.load_state_dict({k: v for k, v in old.items()  # a new decoder layout keeps none of the old decoder
                         if before == after or not k.startswith(VAE_DECODER_PREFIX)}, strict=False)
    if before != after and new.vae.model.has_taef2_decoder:
        from model.taesd import load_taef2_weights

        load_taef2_weights(new.vae.model)  # the encoder is TAEF2's already (never trained): only the decoder changes
        log.info("the decoder changed layout %s -> %s: TAEF2's pretrained decoder", before, after)
    elif before != after:
        log.info("the decoder changed layout %s -> %s and starts fresh", before, after)
    return new


def _decoder_layout(config: Any) -> tuple:
    return config.vae_decoder_widths, config.vae_decoder_blocks


def select_trainable(model: nn.Module, patterns: tuple[str, ...]) -> list[nn.Parameter]:
    """Mark parameters whose name matches a pattern as trainable, everything else as frozen (the autoencoder's
    encoder always; see `is_trainable`)."""
    regexes = [re.compile(p) for p in patterns]
    chosen = []
    for name, param in model.named_parameters():
        train = is_trainable(name, regexes)
        param.requires_grad_(train)
        if train:
            chosen.append(param)
    if not chosen:
        raise ValueError(f"no parameter matches the trainable patterns {patterns}")
    return chosen


def param_groups(model: nn.Module, params: list[nn.Parameter], lr: float,
                 scales: dict[str, float]) -> list[dict[str, Any]]:
    """The optimiser's groups: `params` at `lr`, those whose name matches a pattern of `scales` (first match) at
    lr * its factor. A pattern that matches no trained parameter is an error (a typo would change nothing)."""
    patterns = list(scales)
    regexes = [re.compile(p) for p in patterns]
    chosen = {id(p) for p in params}
    groups: dict[float, list[nn.Parameter]] = {}
    used: set[str] = set()
    for name, param in model.named_parameters():
        if id(param) in chosen:
            pattern = next((p for p, r in zip(patterns, regexes) if r.search(name)), None)
            used.add(pattern)
            groups.setdefault(1.0 if pattern is None else float(scales[pattern]), []).append(param)
    if unused := [p for p in patterns if p not in used]:
        raise ValueError(f"lr_scale patterns match no trained parameter: {unused}")
    ordered = sorted(groups.items(), key=lambda item: item[0] != 1.0)  # the run's own lr first (it is logged)
    return [{"params": g, "lr": lr * f} for f, g in ordered]


def enable_gradient_checkpointing(model: nn.Module) -> int:
    """Turn on diffusers' gradient checkpointing in every sub-model that supports it; returns how many."""
    count = 0
    for module in model.modules():
        if getattr(module, "_supports_gradient_checkpointing", False) and hasattr(module, "enable_gradient_checkpointing"):
            module.enable_gradient_checkpointing()
            count += 1
    return count


def compile_modules(model: nn.Module, names: list[str], cuda: bool) -> list[str]:
    """`torch.compile` the named sub-modules in place (parameter names unchanged); returns the compiled ones.

    Only on CUDA, where fusing the many small kernels of a launch-bound step pays; elsewhere nothing is compiled
    and a warning says so."""
    if not names:
        return []
    if not cuda:
        log.warning("compile_modules %s skipped: torch.compile is used on CUDA only", names)
        return []
    for name in names:
        model.get_submodule(name).compile()
    log.info("torch.compile on %s (the first steps include compilation)", ", ".join(names))
    return list(names)


def optimizer_kwargs(kernel: str) -> dict[str, bool]:
    """torch.optim.AdamW's switch for an implementation of OPTIMIZER_KERNELS."""
    return {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}[kernel]


@contextlib.contextmanager
def contiguous_weights(model: nn.Module, channels_last: bool) -> Iterator[None]:
    """NCHW weights for the duration (safetensors stores only contiguous tensors), channels-last again after."""
    if not channels_last:
        yield
        return
    model.to(memory_format=torch.contiguous_format)
    try:
        yield
    finally:
        model.to(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------------------------- helpers


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def checkpoints(out_dir: Path) -> list[Path]:
    folder = out_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(CHECKPOINT_PREFIX) and (p / "done").exists())


def clip_loss(criterion: RateDistortionLoss, outs: list[dict], frames: torch.Tensor, rate: torch.Tensor,
              stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean per-frame RD loss over the frames this stage trains (P-frames in `inter`/`cascade`, all otherwise)."""
    losses, terms = [], {}
    for t, out in enumerate(outs):
        if stage in P_STAGES and out["frame_type"] == "I":
            continue
        loss, frame_terms = criterion(out, frames[:, t], rate)
        losses.append(loss)
        for key, value in frame_terms.items():
            terms.setdefault(key, []).append(value)
    if not losses:
        raise ValueError(f"stage {stage!r} produced no frame to train on")
    return torch.stack(losses).mean(), {k: torch.stack(v).mean(0) for k, v in terms.items()}


def copy_latent_mse(outs: list[dict]) -> torch.Tensor:
    """Per sample [B]: the mean latent MSE of copying each P-frame's reference (the previous frame's x0) instead of
    coding it, over the P-frames of a clip; a P side whose `latent_mse` is not well below it ignores its reference."""
    errors = [
        (outs[t - 1]["latent_hat"].float() - out["latent"].float()).pow(2).flatten(1).mean(1)
        for t, out in enumerate(outs) if out["frame_type"] != "I"
    ]
    if not errors:
        raise ValueError("the clip has no P-frame to copy a reference into")
    return torch.stack(errors).mean(0)


def batch_rates(seed: int, step: int, rank: int, batch: int, num_rates: int) -> torch.Tensor:
    """Random rate index per sample, a pure function of (seed, step, rank)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step * 1009 + rank)
    return torch.randint(num_rates, (batch,), generator=gen)


def summarise(terms: dict[str, torch.Tensor], rate: torch.Tensor, num_rates: int) -> dict[str, float]:
    """Batch means, plus bpp per rate index present in the batch."""
    row = {k: float(v.float().mean()) for k, v in terms.items()}
    for r in range(num_rates):
        mask = rate == r
        if mask.any():
            row[f"bpp_r{r}"] = float(terms["bpp"][mask.to(terms["bpp"].device)].mean())
    return row


# ----------------------------------------------------------------------------------------------- trainer


class Trainer:
    """Build everything from a TrainConfig; `run()` trains to `max_steps`, resuming from the latest checkpoint."""

    def __init__(self, cfg: TrainConfig, items: list | None = None):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        self.cfg = cfg
        self.cuda = cuda = torch.cuda.is_available()
        self.accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision if cuda else "no", cpu=not cuda,
            step_scheduler_with_optimizer=False,  # the schedule counts optimiser steps, whatever the process count
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        acc = self.accelerator
        set_seed(cfg.seed + acc.process_index)
        self.out_dir = Path(cfg.out_dir)
        if acc.is_main_process:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.out_dir / "train_config.json")

        model = build_model(cfg)
        num_rates = model.config.num_rates
        if len(cfg.lambdas) != num_rates:
            raise ValueError(f"{len(cfg.lambdas)} lambdas for a model with {num_rates} rate points")
        if cfg.crop % model.config.pad_multiple:
            raise ValueError(f"crop {cfg.crop} must be a multiple of {model.config.pad_multiple}")
        self.num_rates = num_rates
        params = select_trainable(model, cfg.trainable_patterns)
        if cfg.gradient_checkpointing:
            log.info("gradient checkpointing on in %d sub-models", enable_gradient_checkpointing(model))
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        self.compiled = compile_modules(model, cfg.compile_modules, cuda)
        reset = cfg.cascade_reset_interval if cfg.stage == "cascade" else None
        coder = ClipCoder(model, cfg.decode, reset, iframe_grad=cfg.stage == "intra",
                          decoder_input=cfg.decoder_input if cfg.stage == "decoder" else None)
        optimizer = torch.optim.AdamW(param_groups(model, params, cfg.lr, cfg.lr_scale), lr=cfg.lr,
                                      weight_decay=cfg.weight_decay, **optimizer_kwargs(cfg.optimizer_kernel))
        self.horizon = cfg.max_steps  # where the cosine ends: fewer steps when a time budget ends the run first
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, cfg.warmup_steps, self.horizon))
        self.coder, self.optimizer, self.scheduler = acc.prepare(coder, optimizer, scheduler)
        self.params = params
        self.ema = None
        if cfg.ema_decay > 0:
            from diffusers.training_utils import EMAModel

            self.ema = EMAModel(params, decay=cfg.ema_decay)

        self.disc = self.disc_opt = None
        if cfg.loss.adversarial_weight > 0:
            disc = PatchDiscriminator()
            disc_opt = torch.optim.AdamW(disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999))
            self.disc, self.disc_opt = acc.prepare(disc, disc_opt)
        self.criterion = RateDistortionLoss(cfg.lambdas, cfg.loss, self.disc).to(acc.device)

        self.state = TrainState()
        self.evaluated_at: int | None = None  # the step whose held-out figures were logged last
        acc.register_for_checkpointing(self.state)
        if self.ema is not None:
            acc.register_for_checkpointing(self.ema)

        if items is None:
            with acc.main_process_first():
                items = load_sources(cfg.sources, cfg.cache_dir, tuple(cfg.exclude), cfg.max_short_side,
                                     cfg.max_frames)
        self.train_items, self.val_items = split_items(items, cfg.val_fraction)
        if not self.train_items:
            raise ValueError("the held-out split left no training items; lower val_fraction")
        self.dataset = ClipDataset(self.train_items, cfg.num_frames, cfg.crop, cfg.seed, cfg.still_fraction,
                                   cfg.max_stride, cfg.scale_range)
        val = [it for it in self.val_items if min(it.frames.shape[1:3]) >= cfg.crop]
        self.val_dataset = ClipDataset(val, cfg.num_frames, cfg.crop, cfg.seed + 1, cfg.still_fraction,
                                       cfg.max_stride, cfg.scale_range) if val else None

    @property
    def model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.coder).model

    # --- checkpoints ---
    def save_checkpoint(self) -> Path:
        acc = self.accelerator
        path = self.out_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{self.state.step:08d}"
        acc.wait_for_everyone()
        with contiguous_weights(self.model, self.cfg.channels_last):
            acc.save_state(str(path))
        if acc.is_main_process:
            (path / "done").write_text(f"{self.state.step}\n")
            for old in checkpoints(self.out_dir)[:-self.cfg.keep_checkpoints]:
                shutil.rmtree(old)
        acc.wait_for_everyone()
        return path

    def resume(self) -> bool:
        found = checkpoints(self.out_dir)
        if not found:
            return False
        self.accelerator.load_state(str(found[-1]))
        log.info("resumed from %s at step %d", found[-1], self.state.step)
        return True

    # --- one step ---
    def set_modes(self) -> None:
        """Train mode, except the frozen parts: the autoencoder (outside the decoder stage), the I-frame codec after
        the intra stage, and every coding network in the decoder stage."""
        self.coder.train()
        if self.cfg.stage == "decoder":
            self.model.eval()
            self.model.vae.model.decoder.train()
            return
        self.model.vae.eval()
        if self.cfg.stage != "intra":
            self.model.intra.eval()

    def train_step(self, frames: torch.Tensor) -> dict[str, float]:
        cfg, acc = self.cfg, self.accelerator
        self.set_modes()
        rate = batch_rates(cfg.seed, self.state.step, acc.process_index, frames.shape[0], self.num_rates)
        frames, rate = frames.to(acc.device, non_blocking=True), rate.to(acc.device)
        with acc.autocast():
            outs = self.coder(frames, rate)
            loss, terms = clip_loss(self.criterion, outs, frames, rate, cfg.stage)
        if not torch.isfinite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(f"non-finite loss at step {self.state.step}")
        acc.backward(loss)
        grad_norm = acc.clip_grad_norm_(self.params, cfg.grad_clip) if cfg.grad_clip > 0 else torch.tensor(0.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.step(self.params)
        terms = {k: acc.gather(v.detach()) for k, v in terms.items()}  # the global batch, for the log
        row = {"loss": float(acc.reduce(loss.detach(), "mean")), "grad_norm": float(grad_norm),
               **summarise(terms, acc.gather(rate), self.num_rates)}
        if self.disc is not None:
            row["disc_loss"] = self.disc_step(outs, frames)
        return row

    def disc_step(self, outs: list[dict], frames: torch.Tensor) -> float:
        fakes = [o["x_hat"] for o in outs if o.get("x_hat") is not None]
        reals = [frames[:, t] for t, o in enumerate(outs) if o.get("x_hat") is not None]
        with self.accelerator.autocast():
            loss = discriminator_loss(self.disc, torch.cat(reals), torch.cat(fakes).detach())
        self.accelerator.backward(loss)
        self.disc_opt.step()
        self.disc_opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    @contextlib.contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """The moving average in place of the trained parameters for the duration (nothing without `ema_decay`)."""
        if self.ema is None:
            yield
            return
        self.ema.store(self.params)
        self.ema.copy_to(self.params)
        try:
            yield
        finally:
            self.ema.restore(self.params)

    # --- evaluation on the held-out items ---
    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """Mean bpp / PSNR / ST-LPIPS (as configured) of `eval_samples` held-out clips at every rate point, with
        the averaged weights when `ema_decay` is set; P stages add `copy_latent_mse` (see `copy_latent_mse`)."""
        if self.val_dataset is None:
            return []
        with self.averaged_weights():
            return self._evaluate()

    def _evaluate(self) -> list[dict[str, float]]:
        cfg, data = self.cfg, self.val_dataset
        coder = self.accelerator.unwrap_model(self.coder)
        coder.eval()
        rows = []
        for r in range(self.num_rates):
            acc_terms: dict[str, list[float]] = {}
            for i in range(cfg.eval_samples):
                frames = data[i][None].to(self.accelerator.device)
                rate = torch.full((1,), r, dtype=torch.long, device=frames.device)
                with self.accelerator.autocast():
                    outs = coder(frames, rate)
                    _, terms = clip_loss(self.criterion, outs, frames, rate, cfg.stage)
                if cfg.stage in P_STAGES:
                    terms = {**terms, "copy_latent_mse": copy_latent_mse(outs)}
                for k, v in terms.items():
                    acc_terms.setdefault(k, []).append(float(v.float().mean()))
            rows.append({"rate": r, **{k: sum(v) / len(v) for k, v in acc_terms.items()}})
        self.set_modes()
        return rows

    # --- the loop ---
    def log(self, row: dict) -> None:
        if self.accelerator.is_main_process:
            with open(self.out_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    def make_loader(self) -> DataLoader:
        """Batches from the step the run resumes at; page-locked (for asynchronous copies) when asked, on CUDA."""
        cfg, acc = self.cfg, self.accelerator
        if cfg.pin_memory and not self.cuda:
            log.info("pin_memory skipped: page-locked batches only help copies to a GPU")
        return DataLoader(
            self.dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
            sampler=StepSampler(cfg.batch_size, self.state.step, acc.process_index, acc.num_processes),
            persistent_workers=cfg.num_workers > 0, pin_memory=cfg.pin_memory and self.cuda,
        )

    def timed(self, budget: TimeBudget, what: str, work: Callable[[], Any]) -> Any:
        """Run `work`, recording its wall time in the budget as `what`."""
        start = time.perf_counter()
        result = work()
        budget.record(what, time.perf_counter() - start)
        return result

    def evaluate_and_log(self, budget: TimeBudget) -> None:
        """Log the held-out figures of the current step (once per step), timing them in the budget."""
        if self.val_dataset is None or self.cfg.eval_samples <= 0 or self.evaluated_at == self.state.step:
            return
        self.evaluated_at = self.state.step
        if self.accelerator.is_main_process:
            for val in self.timed(budget, "eval", self.evaluate):
                self.log({"step": self.state.step, "split": "val", **val})

    def out_of_time(self, budget: TimeBudget) -> bool:
        """Whether the budget leaves no room for another step, decided alike on every process."""
        if budget.at is None:
            return False
        flag = torch.tensor([0.0 if budget.room_for_step() else 1.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, "sum").item() > 0)

    def run(self, steps: int | None = None, budget: TimeBudget | None = None) -> Path | None:
        """Resume, train `steps` more steps (default: up to cfg.max_steps), checkpoint, and write the final model
        folder (returned) once cfg.max_steps is reached or the time `budget` ends the run (then it also evaluates
        on the held-out items; the checkpoint, the evaluation and final/ all fit in the budget)."""
        cfg, acc = self.cfg, self.accelerator
        budget = budget or TimeBudget(None)
        self.resume()
        total = cfg.max_steps if steps is None else min(cfg.max_steps, self.state.step + steps)
        loader = self.make_loader()
        crops_per_step = cfg.batch_size * acc.num_processes * cfg.num_frames
        first, step_seconds, reason = self.state.step, [], "steps"
        stop = {"signal": None}
        previous = signal.signal(signal.SIGTERM, lambda num, frame: stop.update(signal=num))
        try:
            batches = iter(loader)
            while self.state.step < total and stop["signal"] is None:
                if self.out_of_time(budget):
                    reason = "time_budget"
                    break
                start, start_cpu = time.perf_counter(), time.process_time()
                row = self.train_step(next(batches))
                self.state.step += 1
                sec = time.perf_counter() - start
                step_seconds.append(sec)
                budget.record_step(sec)
                self.horizon = budget.planned_steps(self.state.step, cfg.max_steps)
                row = {"step": self.state.step, "stage": cfg.stage, "lr": self.scheduler.get_last_lr()[0],
                       "sec": round(sec, 3), "cpu_sec": round(time.process_time() - start_cpu, 3),
                       "crops_per_sec": round(crops_per_step / sec, 2), **row}
                self.log(row)
                if self.state.step % cfg.log_every == 0 and acc.is_main_process:
                    log.info("step %(step)d loss %(loss).4f bpp %(bpp).4f sec %(sec).2f crops/s %(crops_per_sec).1f",
                             row)
                if self.state.step % cfg.checkpoint_every == 0 or (
                        budget.at is not None and not budget.measured("checkpoint")):
                    self.timed(budget, "checkpoint", self.save_checkpoint)
                if (cfg.eval_every and self.state.step % cfg.eval_every == 0) or (
                        budget.at is not None and not budget.measured("eval")):
                    self.evaluate_and_log(budget)
        except KeyboardInterrupt:
            log.warning("interrupted at step %d", self.state.step)
            stop["signal"] = signal.SIGINT
        finally:
            signal.signal(signal.SIGTERM, previous)
        if stop["signal"] is not None:
            reason = "signal"
        elif self.state.step >= cfg.max_steps:
            reason = "max_steps"
        idle = reason == "time_budget" and not step_seconds  # no time for one step: pass the model on as it is
        last = checkpoints(self.out_dir)
        if not idle and (not last or last[-1].name != f"{CHECKPOINT_PREFIX}{self.state.step:08d}"):
            self.save_checkpoint()
        self.log_summary(first, step_seconds, crops_per_step, reason)
        if reason not in ("max_steps", "time_budget"):
            return None
        if not idle:
            self.evaluate_and_log(budget)
        return self.save_final()

    def log_summary(self, first: int, step_seconds: list[float], crops_per_step: int, reason: str) -> None:
        """One `"split": "summary"` line: steps run, wall seconds, steps/s and crops/s (the first step, which
        includes warm-up and compilation, left out when there are others), and why the run stopped."""
        timed = step_seconds[1:] or step_seconds
        rate = len(timed) / sum(timed) if timed else 0.0
        row = {"step": self.state.step, "split": "summary", "stage": self.cfg.stage, "steps": len(step_seconds),
               "first_step": first, "seconds": round(sum(step_seconds), 3), "steps_per_sec": round(rate, 4),
               "crops_per_sec": round(rate * crops_per_step, 2), "stopped": reason}
        self.log(row)
        if self.accelerator.is_main_process:
            log.info("%(stage)s: %(steps)d steps in %(seconds).1f s, %(steps_per_sec).3f steps/s, "
                     "%(crops_per_sec).1f crops/s, stopped by %(stopped)s", row)

    def save_final(self) -> Path:
        final = self.out_dir / "final"
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            with contiguous_weights(self.model, self.cfg.channels_last), self.averaged_weights():
                self.model.invalidate_hash()
                self.model.save_pretrained(final)
            self.model.invalidate_hash()  # the trained weights are back
            self.cfg.save(final / "train_config.json")
        self.accelerator.wait_for_everyone()
        return final
