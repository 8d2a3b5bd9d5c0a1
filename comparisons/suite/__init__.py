"""Dataset-scale evaluation: the paper's protocol over many sequences, one job per (sequence, codec, rate point).

``python -m comparisons suite SOURCE --out OUT ...`` runs it (locally or on Dask), ``suite-report OUT`` rebuilds the
tables and figures from the records. Modules: `sources` (datasets and sequences from a folder or a manifest),
`jobs` (one job, its record, the worker side), `engines` (in-process, process pool, Dask), `execute` (plan, skip
done jobs, progress, log), `report` (per-sequence results, per-dataset means, BD-rates, tables, figures).
"""
from __future__ import annotations

# The suite's default metrics, a stated choice: the paper's fidelity and perceptual axes at a cost a CPU can
# carry over a dataset. PSNR (RGB and YUV 6:1:1), MS-SSIM, ST-LPIPS and VMAF always; LPIPS-Alex and DISTS when
# their ImageNet weights are present. Left out unless named in --metrics: SSIM (MS-SSIM covers it), the two
# FloLPIPS-style temporal metrics (two LPIPS passes and two optical flows per frame, dearer than ST-LPIPS:
# `python -m comparisons list --measure` states each metric's cost per 1080p frame) and per-sequence patch FID
# (FID is a dataset statistic).
SUITE_METRICS = ("psnr_rgb", "psnr_yuv611", "ms_ssim_rgb", "st_lpips_alex", "vmaf", "lpips_alex", "dists")
# On a GPU (``--device`` resolving to CUDA here) the release's temporal metric joins them; per-sequence patch FID
# stays a named choice (`comparisons evaluate` pools it per dataset, as the release does).
SUITE_GPU_METRICS = ("flolpips_raft",)
