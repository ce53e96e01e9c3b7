"""GFlowNet losses over a batch of complete trajectories of one graph and one sigma.

For a trajectory ``tau`` ending in ``x`` let ``zeta(tau) = log R(x) + sum log P_B - sum log P_F``.
Trajectory balance (Malkin et al., 2022) asks ``zeta(tau) = log Z`` for every trajectory; the
**log-partition variance** loss of "Robust Scheduling with GFlowNets" (Zhang et al., ICLR 2023;
also "VarGrad", Richter et al., 2020) replaces the learned ``log Z`` by the batch mean of ``zeta``
and minimises the batch variance of ``zeta``. It needs no log-Z estimator, which matters here
because ``log Z`` depends on the graph and on sigma.

Both are zero exactly when ``P_F(tau) = R(x) P_B(tau | x) / Z`` on the sampled trajectories.
"""

from __future__ import annotations

import torch

__all__ = ["zeta", "log_partition_variance", "trajectory_balance"]


def zeta(log_reward: torch.Tensor, log_pb: torch.Tensor, log_pf: torch.Tensor) -> torch.Tensor:
    """Per-trajectory log-partition estimates (B,): ``log R + sum log P_B - sum log P_F``.

    Parameters
    ----------
    log_reward
        (B,) log-rewards of the final states.
    log_pb
        (B,) summed backward log-probabilities.
    log_pf
        (B,) summed forward log-probabilities.

    Returns
    -------
    torch.Tensor
        (B,), same dtype and device.
    """
    return log_reward + log_pb - log_pf


def log_partition_variance(log_reward: torch.Tensor, log_pb: torch.Tensor,
                           log_pf: torch.Tensor) -> torch.Tensor:
    """Batch variance of :func:`zeta` (a scalar; 0 for a batch of one).

    Parameters
    ----------
    log_reward, log_pb, log_pf
        (B,) tensors, as for :func:`zeta`.

    Returns
    -------
    torch.Tensor
        A scalar (0-dim) tensor.

    Examples
    --------
    >>> r = torch.tensor([0.0, -1.0]); pf = torch.tensor([-1.0, -2.0])
    >>> float(log_partition_variance(r, torch.zeros(2), pf))
    0.0
    """
    z = zeta(log_reward, log_pb, log_pf)
    return ((z - z.mean()) ** 2).mean()


def trajectory_balance(log_z: torch.Tensor, log_reward: torch.Tensor, log_pb: torch.Tensor,
                       log_pf: torch.Tensor) -> torch.Tensor:
    """Mean squared trajectory-balance residual ``(log Z - zeta)^2`` with a learned ``log Z``.

    Parameters
    ----------
    log_z
        The learned log-partition (a scalar or (B,)).
    log_reward, log_pb, log_pf
        (B,) tensors, as for :func:`zeta`.

    Returns
    -------
    torch.Tensor
        A scalar (0-dim) tensor.
    """
    return ((log_z - zeta(log_reward, log_pb, log_pf)) ** 2).mean()
