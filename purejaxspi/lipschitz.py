"""Lipschitz building blocks for the world model: spectral normalisation and GroupSort.

Spectral normalisation divides a weight by its largest singular value `sigma`, estimated by power
iteration with a persistent vector `u` (flax collection "spectral", refreshed only when that
collection is mutable, i.e. during training updates). Both power-iteration vectors are normalised
before `sigma = v^T W u` is read, so the normalised weight has spectral norm 1, not 1/sigma.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxspi.patches import conv2d

_EPS = 1e-12


def _normalize(x):
    return x / (jnp.linalg.norm(x) + _EPS)


def power_iteration(matrix: jax.Array, u: jax.Array, num_iterations: int = 1):
    """Refine the top right-singular vector estimate `u` of `matrix` [in, out]; returns (u, v, sigma)."""
    for _ in range(max(num_iterations, 1)):
        v = _normalize(matrix @ u)
        u = _normalize(matrix.T @ v)
    u = jax.lax.stop_gradient(u)
    v = jax.lax.stop_gradient(v)
    sigma = v @ matrix @ u
    return u, v, sigma


def group_sort(x: jax.Array) -> jax.Array:
    """GroupSort with groups of 2 (MaxMin): sort each pair of features along the last axis.

    A gradient-norm-preserving, 1-Lipschitz activation; min/max of pairs instead of a general sort.
    """
    *lead, features = x.shape
    if features % 2:
        raise ValueError(f"GroupSort needs an even number of features, got {features}")
    pairs = x.reshape(*lead, features // 2, 2)
    low, high = jnp.min(pairs, axis=-1), jnp.max(pairs, axis=-1)
    return jnp.stack([low, high], axis=-1).reshape(x.shape)


class _SpectralMixin:
    def sigma(self, kernel: jax.Array, num_iterations: int) -> jax.Array:
        """The power-iteration estimate of the kernel's largest singular value (as its [in, out] matrix)."""
        matrix = kernel.reshape(-1, kernel.shape[-1])
        u_var = self.variable(
            "spectral", "u", lambda: _normalize(jnp.ones((matrix.shape[-1],), matrix.dtype))
        )
        u, _, sigma = power_iteration(matrix, u_var.value, num_iterations)
        if self.is_mutable_collection("spectral") and not self.is_initializing():
            u_var.value = u
        return sigma


class LipschitzDense(nn.Module, _SpectralMixin):
    """Dense layer, spectrally normalised when `spectral` is set."""

    features: int
    spectral: bool = True
    gain: float = 1.0
    power_iterations: int = 1

    @nn.compact
    def raw_weights(self, in_features: int):
        """The kernel [in, out], bias [out] and sigma, the kernel's spectral norm estimate (1 without `spectral`)."""
        kernel = self.param("kernel", nn.initializers.orthogonal(self.gain), (in_features, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        sigma = self.sigma(kernel, self.power_iterations) if self.spectral else 1.0
        return kernel, bias, sigma

    def weights(self, in_features: int):
        """The (normalised) kernel [in, out] and bias [out]."""
        kernel, bias, sigma = self.raw_weights(in_features)
        return kernel / sigma, bias

    def __call__(self, x):
        # (x @ W) / sigma equals x @ (W / sigma) and skips a pass over the kernel, forward and backward
        kernel, bias, sigma = self.raw_weights(x.shape[-1])
        return (x @ kernel) / sigma + bias


class LipschitzConv(nn.Module, _SpectralMixin):
    """Stride-1 SAME convolution, spectrally normalised (as its [kh*kw*cin, cout] matrix) when `spectral`."""

    features: int
    kernel_size: Sequence[int] = (2, 2)
    spectral: bool = True
    gain: float = 1.0
    power_iterations: int = 1

    @nn.compact
    def __call__(self, x):
        shape = (*self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.orthogonal(self.gain, column_axis=-1), shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        y = conv2d(x, kernel, 1, "SAME")
        if self.spectral:
            y = y / self.sigma(kernel, self.power_iterations)
        return y + bias
