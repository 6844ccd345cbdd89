"""TeaCache calibration: fit the degree-4 polynomial that maps the relative change of the
network's input to the relative change of its output (Liu et al. 2024, Sec. 3.3, eq. 6).

Run the *uncached* reverse sampler for N trajectories of T steps; at every step i >= 1 and
for every sample record
  x_i = mean|u_i - u_{i-1}| / mean|u_{i-1}|   (embedded input: tokens + positions + time)
  y_i = mean|r_i - r_{i-1}| / mean|r_{i-1}|   (r = out - u, the residual TeaCache reuses)
and fit y ~ p(x) with ``numpy.polyfit(x, y, 4)``. The result (coefficients, fit residual,
data used) is written atomically as JSON, by default next to the checkpoint."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fdbench.cache.module_reuse import rel_l1
from fdbench.errors import ConfigError, InputError
from fdbench.io import atomic_write_json

FILE_NAME = "teacache_calibration.json"
DEGREE = 4
FORMAT = "fdbench-teacache-calibration"


class ChangeRecorder:
    """Engine-shaped wrapper (``start_batch``, ``__call__(x, t, step, stage)``) that runs the
    plain network and records (input change, output change) per sample and step."""

    def __init__(self, network: Any):
        self.network, self.history = network, []
        self.x: list[Tensor] = []
        self.y: list[Tensor] = []
        self.previous: tuple[Tensor, Tensor] | None = None

    def start_batch(self, n_steps: int, sample_ids: Tensor) -> None:
        self.previous = None

    @torch.no_grad()
    def __call__(self, x: Tensor, t: Tensor, step: int, stage: int = 0) -> Tensor:
        u = self.network.embed(x, t)
        out = self.network.backbone(u)
        if stage == 0:          # calibrate on the step grid (stage-1 calls are off-grid)
            residual = out - u
            if self.previous is not None:
                self.x.append(rel_l1(u, self.previous[0]).cpu())
                self.y.append(rel_l1(residual, self.previous[1]).cpu())
            self.previous = (u, residual)
        return self.network.head(out)


def fit_polynomial(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """numpy.polyfit of degree 4 (TeaCache eq. 6) with its RMS residual; clear errors for
    too few or non-finite points."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"calibration data must be two 1-d arrays of one length, got "
                         f"{x.shape} and {y.shape}")
    if x.size < DEGREE + 2:
        raise InputError(f"calibration needs at least {DEGREE + 2} (input change, output "
                         f"change) points, got {x.size}: use more trajectories or steps")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("calibration data contain NaN or Inf (a diverging model?)")
    if np.ptp(x) == 0.0:
        raise InputError("calibration input changes are all equal: nothing to fit")
    coefficients = np.polyfit(x, y, DEGREE)
    residual = y - np.polyval(coefficients, x)
    return {"coefficients": [float(c) for c in coefficients],
            "fit_rmse": float(np.sqrt(np.mean(residual ** 2))),
            "n_points": int(x.size),
            "input_change_range": [float(x.min()), float(x.max())],
            "output_change_range": [float(y.min()), float(y.max())]}


def calibrate(model: Any, *, num_trajectories: int = 8, n_steps: int = 100, seed: int = 0,
              batch_size: int = 64) -> dict[str, Any]:
    """Fit TeaCache's rescaling polynomial on ``model`` (a ScoreModel) from
    ``num_trajectories`` uncached reverse-SDE trajectories of ``n_steps`` steps."""
    from fdbench.generate import generate

    if num_trajectories < 1:
        raise ConfigError(f"num_trajectories must be >= 1, got {num_trajectories}")
    if n_steps < 3:
        raise ConfigError(f"steps must be >= 3 (two changes per trajectory), got {n_steps}")
    recorder = ChangeRecorder(model.network)
    generate(model, num_trajectories, n_steps=n_steps, seed=seed, progress=False,
             batch_size=min(batch_size, num_trajectories), engine=recorder)
    x = torch.cat(recorder.x).numpy()
    y = torch.cat(recorder.y).numpy()
    result = fit_polynomial(x, y)
    result.update(format=FORMAT, degree=DEGREE, num_trajectories=num_trajectories,
                  steps=n_steps, seed=seed, sampler="reverse Euler-Maruyama (uncached)")
    return result


def save_calibration(path: str | os.PathLike, result: dict[str, Any]) -> Path:
    """Write a calibration atomically (JSON)."""
    return atomic_write_json(path, result)


def load_calibration(path: str | os.PathLike) -> tuple[float, ...]:
    """The coefficients of a calibration file, checked (clear ConfigError otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"TeaCacheConfig.calibration: no such file {path}")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"TeaCacheConfig.calibration: {path} is not JSON: {err}") from None
    coefficients = payload.get("coefficients") if isinstance(payload, dict) else None
    if (not isinstance(coefficients, list) or len(coefficients) != DEGREE + 1
            or not all(isinstance(c, (int, float)) and math.isfinite(c) for c in coefficients)):
        raise ConfigError(f"TeaCacheConfig.calibration: {path} has no list of "
                          f"{DEGREE + 1} finite coefficients")
    return tuple(float(c) for c in coefficients)
