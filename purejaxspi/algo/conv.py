"""Convolutions as patch extraction + matmul.

Under `vmap` over runs every weight gains a batch axis; XLA's CPU backend lowers a batched-kernel
convolution to a slow grouped convolution, while a batched matmul (dot_general) stays fast. Slicing
the input into patches and contracting with the kernel as a matrix gives the same convolution.
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


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: str = "VALID") -> jax.Array:
    """NHWC convolution with an HWIO kernel, computed as patches @ kernel-matrix."""
    k = kernel.shape[0]
    patches = extract_patches(x, k, stride, padding)
    return patches @ kernel.reshape(-1, kernel.shape[-1])
