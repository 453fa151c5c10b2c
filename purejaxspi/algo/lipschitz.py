"""Lipschitz building blocks for the world model: spectral normalisation and GroupSort.

Spectral normalisation divides a weight by an estimate of its largest singular value, in one of two
ways (`SPECTRAL_NORMS`):

- "exact": power iteration with a persistent vector `u` (flax collection "spectral", refreshed only
  when that collection is mutable, i.e. during training updates). Both vectors are normalised before
  `sigma = v^T W u` is read, so the normalised weight has spectral norm 1. For a convolution the
  iteration runs through the convolution itself and its transpose (`jax.vjp`), on an input of the
  layer's own spatial size: a k x k convolution can stretch by more than its reshaped kernel matrix,
  so only the operator's norm makes the layer 1-Lipschitz.
- "reference": the estimate of the paper's own code: two power iterations from a fixed start vector
  whose last vector is left unnormalised, so it reads ||W^T u||^2, about sigma^2, with gradients
  through it. The "normalised" weight then has norm about 1/sigma(W): the layer is not 1-Lipschitz
  and becomes steeper as training shrinks W. The paper's results were obtained with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxspi.algo.conv import conv2d

SPECTRAL_NORMS = ("exact", "reference")
REFERENCE_POWER_ITERATIONS = 2
_EPS = 1e-12


def _unit(x):
    return x / (jnp.sqrt(jnp.sum(x * x)) + _EPS)


def power_iteration(matrix: jax.Array, u: jax.Array, num_iterations: int = 1):
    """Refine the top right-singular vector estimate `u` of `matrix` [in, out]; returns (u, v, sigma):
    the operator power iteration of the matrix's linear map."""
    return operator_power_iteration(lambda x: matrix @ x, u, num_iterations)


def operator_power_iteration(linear, u: jax.Array, num_iterations: int = 1):
    """Refine the top right-singular vector `u` of the linear map `linear` (u's shape -> any shape),
    its transpose taken by `jax.vjp`; returns (u, v, sigma) with sigma = <v, linear(u)>, differentiable
    in whatever `linear` closes over."""
    with jax.named_scope("power_iteration"):
        return _operator_power_iteration(linear, u, num_iterations)


def _operator_power_iteration(linear, u, num_iterations):
    for _ in range(max(num_iterations, 1)):
        image, transpose = jax.vjp(linear, u)
        v = _unit(image)
        (u,) = transpose(v)
        u = _unit(u)
    u = jax.lax.stop_gradient(u)
    v = jax.lax.stop_gradient(v)
    return u, v, jnp.sum(v * linear(u))


def refreshed_sigma(module, start, iterate, name: str = "u") -> jax.Array:
    """The spectral norm estimate of a layer from its persistent vector (flax collection "spectral",
    `start()` when created): `iterate(u)` returns (u, v, sigma), and the refined `u` is kept only when
    that collection is mutable, i.e. during training updates."""
    u_var = module.variable("spectral", name, start)
    u, _, sigma = iterate(u_var.value)
    if module.is_mutable_collection("spectral") and not module.is_initializing():
        u_var.value = u
    return sigma


# Iterations that converge a convolution's vector when the layer is created, so the first updates
# already divide by the operator's norm rather than by an estimate from a blind start.
INIT_POWER_ITERATIONS = 50


def reference_sigma(matrix: jax.Array, num_iterations: int = REFERENCE_POWER_ITERATIONS) -> jax.Array:
    """The paper's code's estimate for `matrix` [in, out]: ||W^T u||^2 ~ sigma^2, differentiable.

    Starts from a fixed standard-normal vector on the output side; each iteration normalises it,
    maps it through the matrix, normalises the image `u` and maps back, unnormalised.
    """
    with jax.named_scope("reference_sigma"):
        return _reference_sigma(matrix, num_iterations)


def _reference_sigma(matrix, num_iterations):
    v = jax.random.normal(jax.random.PRNGKey(0), (matrix.shape[-1],), matrix.dtype)
    for _ in range(num_iterations):
        v = v / jnp.sqrt(jnp.sum(v**2) + 1e-8)
        u = matrix @ v
        u = u / jnp.sqrt(jnp.sum(u**2) + 1e-8)
        v = matrix.T @ u
    return u @ (matrix @ v)


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


def kernel_init(spectral_norm: str, gain: float, column_axis: int = -1):
    """Orthogonal init for the exact estimate (scale-free there); the reference's LeCun normal for
    its own estimate, whose layer norm 1/sigma(W) the initial scale sets."""
    if spectral_norm == "reference":
        return nn.initializers.lecun_normal()
    return nn.initializers.orthogonal(gain, column_axis=column_axis)


class _SpectralMixin:
    def sigma(self, matrix: jax.Array, num_iterations: int, spectral_norm: str, name: str = "u") -> jax.Array:
        """The estimate of the largest singular value of `matrix` [in, out] by `spectral_norm`."""
        if spectral_norm == "reference":
            return reference_sigma(matrix)
        if spectral_norm != "exact":
            raise ValueError(f"unknown spectral norm {spectral_norm!r}; choose one of {', '.join(SPECTRAL_NORMS)}")

        def start():
            return _unit(jnp.ones((matrix.shape[-1],), matrix.dtype))

        return refreshed_sigma(self, start, lambda u: power_iteration(matrix, u, num_iterations), name)


class LipschitzDense(nn.Module, _SpectralMixin):
    """Dense layer, spectrally normalised when `spectral` is set."""

    features: int
    spectral: bool = True
    gain: float = 1.0
    power_iterations: int = 1
    spectral_norm: str = "exact"

    @nn.compact
    def raw_weights(self, in_features: int):
        """The kernel [in, out], bias [out] and sigma, the kernel's spectral norm estimate (1 without `spectral`)."""
        init = kernel_init(self.spectral_norm if self.spectral else "exact", self.gain)
        kernel = self.param("kernel", init, (in_features, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        sigma = self.sigma(kernel, self.power_iterations, self.spectral_norm) if self.spectral else 1.0
        return kernel, bias, sigma

    def __call__(self, x):
        # (x @ W) / sigma equals x @ (W / sigma) and skips a pass over the kernel, forward and backward
        kernel, bias, sigma = self.raw_weights(x.shape[-1])
        return (x @ kernel) / sigma + bias


class LipschitzConv(nn.Module, _SpectralMixin):
    """Stride-1 SAME convolution, spectrally normalised when `spectral`: "exact" divides by the norm of the
    convolution as an operator on inputs of this spatial size (so the layer is 1-Lipschitz), "reference"
    by the paper's code's estimate for the [kh*kw*cin, cout] kernel matrix."""

    features: int
    kernel_size: Sequence[int] = (2, 2)
    spectral: bool = True
    gain: float = 1.0
    power_iterations: int = 1
    spectral_norm: str = "exact"
    impl: str = "patches"  # conv.conv2d's: "lax" or "patches"

    @nn.compact
    def __call__(self, x):
        shape = (*self.kernel_size, x.shape[-1], self.features)
        init = kernel_init(self.spectral_norm if self.spectral else "exact", self.gain)
        kernel = self.param("kernel", init, shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        y = conv2d(x, kernel, 1, "SAME", self.impl)
        if not self.spectral:
            return y + bias
        if self.spectral_norm == "reference":
            return y / reference_sigma(kernel.reshape(-1, self.features)) + bias
        if self.spectral_norm != "exact":
            raise ValueError(f"unknown spectral norm {self.spectral_norm!r}; choose one of {', '.join(SPECTRAL_NORMS)}")

        def linear(u):
            return conv2d(u[None], kernel, 1, "SAME", self.impl)[0]

        start = _unit(jnp.ones(x.shape[1:], x.dtype))
        sigma = refreshed_sigma(
            self,
            lambda: operator_power_iteration(linear, start, INIT_POWER_ITERATIONS)[0],
            lambda u: operator_power_iteration(linear, u, self.power_iterations),
        )
        return y / sigma + bias
