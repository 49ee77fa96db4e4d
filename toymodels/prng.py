"""NumPy implementation of JAX's *legacy* threefry PRNG (``jax_threefry_partitionable=False``).

Why: drawing the paper's vectors with ``jax.random`` compiles one unrolled Threefry-2x32 per
``split``/``normal`` call, which costs seconds of XLA compilation at every start-up of the CLI. The
integer part (key derivation and random bits) is cheap, exact arithmetic, so it is done here in
NumPy; only the float32 transform bits → uniform → √2·erfinv(u) runs in JAX, with the same
operations as ``jax.random.normal``. ``tests/test_prng.py`` checks bit-for-bit equality with
``jax.random`` under ``jax.threefry_partitionable(False)``.

Threefry-2x32 (Salmon et al., 2011) with 20 rounds, as in ``jax._src.prng``:
key schedule k₀, k₁, k₂ = k₀ ⊕ k₁ ⊕ 0x1BD11BDA; rotations (13, 15, 26, 6) and (17, 29, 16, 24).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(key: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Threefry-2x32 block cipher on counters (x0, x1) with a key of two uint32 words."""
    k0, k1 = np.uint32(key[0]), np.uint32(key[1])
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0 = x0.astype(np.uint32) + ks[0]
    x1 = x1.astype(np.uint32) + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r)
            x1 = x1 ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _threefry_2x32(key: np.ndarray, count: np.ndarray) -> np.ndarray:
    """JAX's ``threefry_2x32``: counters split in halves, odd lengths padded with one zero."""
    count = count.ravel().astype(np.uint32)
    odd = count.size % 2
    if odd:
        count = np.concatenate([count, np.zeros(1, np.uint32)])
    half = count.size // 2
    y0, y1 = threefry2x32(key, count[:half], count[half:])
    out = np.concatenate([y0, y1])
    return out[:-1] if odd else out


def prng_key(seed: int) -> np.ndarray:
    """``jax.random.PRNGKey(seed)`` for 0 <= seed < 2^32: the key words are (0, seed)."""
    return np.array([(int(seed) >> 32) & 0xFFFFFFFF, int(seed) & 0xFFFFFFFF], dtype=np.uint32)


def split(key: np.ndarray, num: int = 2) -> np.ndarray:
    """Legacy ``jax.random.split``: threefry of the counters 0 … 2·num−1, reshaped (num, 2)."""
    with np.errstate(over="ignore"):
        return _threefry_2x32(key, np.arange(2 * num, dtype=np.uint32)).reshape(num, 2)


def random_bits(key: np.ndarray, n: int) -> np.ndarray:
    """Legacy 32-bit random bits of length n (n < 2^32)."""
    with np.errstate(over="ignore"):
        return _threefry_2x32(key, np.arange(n, dtype=np.uint32))


@jax.jit
def _normal_from_bits(bits: jax.Array) -> jax.Array:
    """float32 bits → uniform on [nextafter(−1, 0), 1) → √2·erfinv(u), as ``jax.random.normal``."""
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
    hi = np.float32(1.0)
    float_bits = jax.lax.shift_right_logical(bits, np.uint32(32 - 23)) | np.float32(1.0).view(np.uint32)
    floats = jax.lax.bitcast_convert_type(float_bits, jnp.float32) - np.float32(1.0)
    u = jax.lax.max(lo, floats * (hi - lo) + lo)
    return np.float32(np.sqrt(2)) * jax.lax.erf_inv(u)


def normal_float32(keys_and_sizes: list[tuple[np.ndarray, int]]) -> list[np.ndarray]:
    """Legacy ``jax.random.normal(key, (n,), float32)`` for several (key, n) pairs, in one JAX call."""
    bits = np.concatenate([random_bits(k, n) for k, n in keys_and_sizes])
    # pad to a power of two (elementwise map: values unchanged) so new sizes rarely recompile
    padded = np.zeros(1 << max(8, int(bits.size - 1).bit_length()), dtype=bits.dtype)
    padded[: bits.size] = bits
    normals = np.asarray(_normal_from_bits(jnp.asarray(padded)))[: bits.size]
    out, start = [], 0
    for _, n in keys_and_sizes:
        out.append(normals[start : start + n])
        start += n
    return out
