"""Convolutions, two ways: `lax.conv_general_dilated` (cuDNN on a GPU) or patch extraction + matmul.

Under `vmap` over runs every weight gains a batch axis; XLA's CPU backend lowers a batched-kernel
convolution to a slow grouped convolution, while a batched matmul (dot_general) stays fast. Slicing
the input into patches and contracting with the kernel as a matrix gives the same convolution.
`conv="auto"` picks per platform (`AUTO_CONV`), like the run mapping; both are tested equal.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def extract_patches(x: jax.Array, kernel_size: int, stride: int = 1, padding: str = "VALID") -> jax.Array:
    """[B, H, W, C] -> [B, Ho, Wo, k*k*C], patch features ordered (row offset, col offset, channel)."""
    k = kernel_size
    if padding == "SAME":
        _, h, w, _ = x.shape
        out_h, out_w = -(-h // stride), -(-w // stride)
        pad_h = max((out_h - 1) * stride + k - h, 0)
        pad_w = max((out_w - 1) * stride + k - w, 0)
        x = jnp.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    _, h, w, _ = x.shape
    out_h, out_w = (h - k) // stride + 1, (w - k) // stride + 1
    slices = [
        x[:, i : i + stride * (out_h - 1) + 1 : stride, j : j + stride * (out_w - 1) + 1 : stride, :]
        for i in range(k)
        for j in range(k)
    ]
    return jnp.concatenate(slices, axis=-1)


CONV_IMPLS = ("auto", "lax", "patches")
# Measured on the project's CPUs: patches @ matrix under vmap over runs (benchmarks/README.md). GPUs take
# lax.conv (cuDNN) until `benchmarks/gpu.sh` measures both there.
AUTO_CONV = {"cpu": "patches"}


def resolve_conv(impl: str, platform: str | None = None) -> str:
    """ "lax" or "patches" for `impl` ("auto": the platform's measured choice)."""
    if impl != "auto":
        return impl
    return AUTO_CONV.get(platform or jax.default_backend(), "lax")


def conv2d(
    x: jax.Array, kernel: jax.Array, stride: int = 1, padding: str = "VALID", impl: str = "patches"
) -> jax.Array:
    """NHWC convolution with an HWIO kernel: as patches @ kernel-matrix, or by lax.conv (`impl` "lax")."""
    if impl == "lax":
        return jax.lax.conv_general_dilated(
            x, kernel, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    k = kernel.shape[0]
    patches = extract_patches(x, k, stride, padding)
    return patches @ kernel.reshape(-1, kernel.shape[-1])
