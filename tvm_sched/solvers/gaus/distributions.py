"""Gaussian start steps: masses on integer steps, CDFs, and the closed-form dependency term.

Node ``i`` starts at an integer step drawn from ``N(mu_i, sigma_i)`` rounded to the nearest
integer. Everything is computed directly from the standard normal CDF ``Phi`` (never from
cumulative sums of truncated bins), as in Cai et al., "GauS: Differentiable Scheduling
Optimization via Gaussian Reparameterization" (arXiv 2602.20427):

- mass on step ``d``: ``Phi((d + 1/2 - mu) / sigma) - Phi((d - 1/2 - mu) / sigma)``; on a horizon
  ``0..D-1`` the two tails are folded into the end steps (the first step's lower edge is ``-inf``,
  the last step's upper edge ``+inf``), so the masses of a node sum to one exactly;
- ``P(start <= t)`` for an integer ``t``: ``Phi((t + 1/2 - mu) / sigma)``.

Dependency term
---------------
For an edge ``u -> v`` with latency ``L`` (steps) the constraint is ``s_v - s_u >= L`` on the
rounded steps. We use the *closed form for the difference of two Gaussians*:
``X = s_v - s_u ~ N(mu_v - mu_u, sqrt(sigma_u^2 + sigma_v^2))`` (independent nodes) and the expected
shortfall below the rounding midpoint ``L - 1/2``,

    E[max(0, (L - 1/2) - X)] = (c - m) Phi((c - m) / s) + s phi((c - m) / s),   c = L - 1/2,

which is O(|E|) instead of the O(|E| D) sum over the joint step masses, is smooth everywhere, and
has an informative gradient even when the violation probability is tiny (the probability form
``P(X < c)`` saturates). The half-step shift makes a dependency with ``L = 0`` (stages: same stage
allowed) cost nothing when both nodes sit on the same step with small sigma. The legaliser and the
exact evaluator use the same latencies exactly (``start_v >= start_u + L``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["sigma_of", "inverse_sigma", "std_normal_cdf", "std_normal_pdf", "step_cdf",
           "step_cdfs", "step_mass", "expected_shortfall"]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def sigma_of(raw: torch.Tensor, floor: float) -> torch.Tensor:
    """``softplus(raw) + floor``: the standard deviation, never below ``floor``.

    Parameters
    ----------
    raw
        Unconstrained parameters, any shape.
    floor
        The smallest standard deviation.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``raw``.
    """
    return F.softplus(raw) + floor


def inverse_sigma(sigma: torch.Tensor, floor: float) -> torch.Tensor:
    """The ``raw`` that :func:`sigma_of` maps to ``sigma`` (clamped just above the floor).

    Parameters
    ----------
    sigma
        Standard deviations, any shape.
    floor
        The floor :func:`sigma_of` adds.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``sigma``; ``sigma - floor`` is clamped to at least
        ``1e-4`` first.
    """
    x = torch.clamp(sigma - floor, min=1e-4)
    return x + torch.log(-torch.expm1(-x))


def std_normal_cdf(z: torch.Tensor) -> torch.Tensor:
    """The standard normal CDF ``Phi``, elementwise (through ``erf``).

    Parameters
    ----------
    z
        Any shape.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``z``.
    """
    return 0.5 * (1.0 + torch.erf(z / _SQRT2))


def std_normal_pdf(z: torch.Tensor) -> torch.Tensor:
    """The standard normal density ``phi``, elementwise.

    Parameters
    ----------
    z
        Any shape.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``z``.
    """
    return _INV_SQRT_2PI * torch.exp(-0.5 * z * z)


def step_cdf(mu: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``P(round(start) <= t)`` for integer steps ``t``.

    Parameters
    ----------
    mu, sigma
        (B, n) float tensors on one device.
    t
        Steps, (T,) or broadcastable to (B, n, T), same dtype and device.

    Returns
    -------
    torch.Tensor
        (B, n, T) probabilities, not folded at the horizon.
    """
    return std_normal_cdf((t + 0.5 - mu.unsqueeze(-1)) / sigma.unsqueeze(-1))


def step_cdfs(mu: torch.Tensor, sigma: torch.Tensor, horizon: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``P(step <= t)`` and ``P(step < t)`` on ``0..horizon-1`` (tails folded), each (B, n, D).

    Parameters
    ----------
    mu, sigma
        (B, n) float tensors on one device.
    horizon
        Number of steps ``D``.

    Returns
    -------
    tuple of torch.Tensor
        ``(upper, lower)``: ``upper[..., D-1]`` is one and ``lower[..., 0]`` zero, so
        ``upper - lower`` is :func:`step_mass`.
    """
    d = torch.arange(horizon, dtype=mu.dtype, device=mu.device)
    upper = step_cdf(mu, sigma, d)
    upper = torch.cat([upper[..., :-1], torch.ones_like(upper[..., -1:])], dim=-1)
    lower = torch.cat([torch.zeros_like(upper[..., :1]), upper[..., :-1]], dim=-1)
    return upper, lower


def step_mass(mu: torch.Tensor, sigma: torch.Tensor, horizon: int) -> torch.Tensor:
    """Mass of each node on steps ``0..horizon-1`` with the tails folded into the end steps.

    Parameters
    ----------
    mu, sigma
        (B, n) float tensors on one device.
    horizon
        Number of steps ``D``.

    Returns
    -------
    torch.Tensor
        (B, n, D), each row summing to one.
    """
    upper, lower = step_cdfs(mu, sigma, horizon)
    return upper - lower


def expected_shortfall(mean: torch.Tensor, std: torch.Tensor, threshold: torch.Tensor
                       ) -> torch.Tensor:
    """``E[max(0, threshold - X)]`` for ``X ~ N(mean, std)`` (closed form, elementwise).

    Parameters
    ----------
    mean, std, threshold
        Broadcastable float tensors on one device; ``std > 0``.

    Returns
    -------
    torch.Tensor
        The broadcast shape; non-negative.
    """
    gap = threshold - mean
    z = gap / std
    return gap * std_normal_cdf(z) + std * std_normal_pdf(z)
