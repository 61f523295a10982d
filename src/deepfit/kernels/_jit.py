"""The numba kernels (imported only when numba is installed and the JIT is on).

Each loop body performs the float operations of its NumPy twin in the same order and in the
arrays' dtype (scalars arrive already cast to it), with ``fastmath`` off, so the results equal
the NumPy path's (bit for bit, except where a NumPy reduction sums in another order).
"""

from __future__ import annotations

import numba
import numpy as np

_OPTS = {"cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)


@numba.njit(**_OPTS)
def adam_step(p, g, v, s, scalars):  # pragma: no cover
    """Adam on 1-D arrays (twin: :meth:`deepfit.optim.transforms.ScaleByAdam.update_`);
    ``scalars = [b1, 1 - b1, b2, 1 - b2, 1 - b1^t, 1 - b2^t, eps, wd, lr]`` in the arrays'
    dtype (one argument: numba's dispatch costs about 0.1 us per argument)."""
    b1, c1, b2, c2 = scalars[0], scalars[1], scalars[2], scalars[3]
    bc1, bc2, eps, wd, lr = scalars[4], scalars[5], scalars[6], scalars[7], scalars[8]
    for i in range(p.shape[0]):
        gi = g[i]
        vi = v[i] * b1 + c1 * gi
        si = s[i] * b2 + c2 * (gi * gi)
        v[i] = vi
        s[i] = si
        u = vi / (np.sqrt(si / bc2) + eps) / bc1
        if wd != 0:
            u = u + wd * p[i]
        p[i] = p[i] - u * lr


@numba.njit(**_OPTS)
def relu_forward(z, a, positive):  # pragma: no cover
    """``a = max(z, 0)`` (NaN passes through) and ``positive = z > 0``, on 1-D arrays."""
    zero = z.dtype.type(0)
    for i in range(z.shape[0]):
        zi = z[i]
        positive[i] = zi > zero
        a[i] = zero if zi <= zero else zi


@numba.njit(**_OPTS)
def bias_relu_forward(z, b, positive):  # pragma: no cover
    """In place on a C-ordered ``(m, n)`` ``z``: ``z = max(z + b, 0)`` (NaN passes through) and
    ``positive = z + b > 0`` (twin: ``z += b`` then :func:`relu_forward`)."""
    m, n = z.shape
    zero = z.dtype.type(0)
    for i in range(m):
        for j in range(n):
            zi = z[i, j] + b[j]
            positive[i, j] = zi > zero
            z[i, j] = zero if zi <= zero else zi


@numba.njit(**_OPTS)
def mask_multiply(da, keep, out):  # pragma: no cover
    """``out = da * keep`` for a boolean ``keep``, on 1-D arrays (ReLU's backward)."""
    for i in range(da.shape[0]):
        out[i] = da[i] * keep[i]


@numba.njit(**_OPTS)
def _splitmix64(seed, k):  # pragma: no cover
    h = seed + np.uint64(k + 1) * _GOLDEN
    h = (h ^ (h >> np.uint64(30))) * _MIX1
    h = (h ^ (h >> np.uint64(27))) * _MIX2
    return h ^ (h >> np.uint64(31))


@numba.njit(**_OPTS)
def dropout_forward(a, seed, threshold, scale, out, mask):  # pragma: no cover
    """Inverted dropout on 1-D arrays with the counter-based bits of
    :func:`deepfit.nn.dropout.mask_bits`: ``mask = scale * (bits < threshold)``,
    ``out = a * mask``."""
    n = a.shape[0]
    zero = a.dtype.type(0)
    for k in range(n // 2):  # two 32-bit draws per hash, no branch: the loop vectorizes
        h = _splitmix64(seed, k)
        lo = scale if (h & _LOW32) < threshold else zero
        hi = scale if (h >> np.uint64(32)) < threshold else zero
        mask[2 * k] = lo
        out[2 * k] = a[2 * k] * lo
        mask[2 * k + 1] = hi
        out[2 * k + 1] = a[2 * k + 1] * hi
    if n % 2:
        h = _splitmix64(seed, n // 2)
        m = scale if (h & _LOW32) < threshold else zero
        mask[n - 1] = m
        out[n - 1] = a[n - 1] * m


@numba.njit(**_OPTS)
def batchnorm_forward(z, gamma, beta, eps, y, z_hat, mu, var, inv_std):  # pragma: no cover
    """Training-mode batch norm of a C-ordered ``(m, n)`` batch; fills every output."""
    m, n = z.shape
    dt = z.dtype.type
    for j in range(n):
        mu[j] = 0
        var[j] = 0
    for i in range(m):
        for j in range(n):
            mu[j] += z[i, j]
    for j in range(n):
        mu[j] = mu[j] / dt(m)
    for i in range(m):
        for j in range(n):
            c = z[i, j] - mu[j]
            z_hat[i, j] = c
            var[j] += c * c
    for j in range(n):
        var[j] = var[j] / dt(m)
        inv_std[j] = dt(1.0) / np.sqrt(var[j] + eps)
    for i in range(m):
        for j in range(n):
            zh = z_hat[i, j] * inv_std[j]
            z_hat[i, j] = zh
            y[i, j] = zh * gamma[j] + beta[j]


@numba.njit(**_OPTS)
def batchnorm_backward(dy, z_hat, scale, dgamma, dbeta, dz):  # pragma: no cover
    """Batch norm's backward on C-ordered ``(m, n)`` arrays, ``scale = gamma * inv_std / m``:
    ``dz = (m dy - sum dy - z_hat sum(dy z_hat)) * scale``."""
    m, n = dy.shape
    fm = dy.dtype.type(m)
    for j in range(n):
        dgamma[j] = 0
        dbeta[j] = 0
    for i in range(m):
        for j in range(n):
            d = dy[i, j]
            dgamma[j] += d * z_hat[i, j]
            dbeta[j] += d
    for i in range(m):
        for j in range(n):
            dz[i, j] = (dy[i, j] * fm - dbeta[j] - z_hat[i, j] * dgamma[j]) * scale[j]


@numba.njit(**_OPTS)
def softmax_cross_entropy(z, y, scalars, grad):  # pragma: no cover
    """Softmax cross-entropy of a C-ordered ``(m, k)`` batch of logits ``z`` with class
    indices ``y``: value and gradient together (twin: the NumPy path of
    :meth:`deepfit.nn.losses.SoftmaxCrossEntropy.forward`, whose operations it performs in
    its order).

    ``scalars = [1 - eps, eps / k, m]`` in the logits' dtype (``eps``: label smoothing). Per
    row ``i``, with ``s_ij = z_ij - max_j z_ij`` and ``logp_ij = s_ij - log sum_j exp s_ij``::

        l_i = -(1 - eps) logp_iy - (eps / k) sum_j logp_ij
        grad_ij = (exp(logp_ij) - eps / k - (1 - eps) [j = y_i]) / m

    Returns ``(sum_i l_i, hits, bad)``: the sum accumulated in float64, the number of rows
    whose first largest logit (NumPy's ``argmax``: a NaN counts as largest) is the label, and
    the first row whose label lies outside ``0..k-1`` (then nothing else is done) or -1. The
    exponentials run as flat passes over the batch, which vectorize.
    """
    m, k = z.shape
    keep, spread, fm = scalars[0], scalars[1], scalars[2]
    zero = z.dtype.type(0)
    flat = grad.reshape(m * k)
    top = np.empty(m, z.dtype)
    hits = 0
    for i in range(m):
        label = y[i]
        if label < 0 or label >= k:
            return 0.0, hits, i
        t = z[i, 0]
        arg = 0
        if t == t:  # max and argmax together; a NaN ends the search (and wins)
            for j in range(1, k):
                zj = z[i, j]
                if zj > t:
                    t, arg = zj, j
                elif zj != zj:
                    t, arg = zj, j
                    break
        hits += arg == label
        top[i] = t
        for j in range(k):
            grad[i, j] = z[i, j] - t
    for q in range(m * k):
        flat[q] = np.exp(flat[q])
    total = 0.0
    for i in range(m):
        s = zero
        for j in range(k):
            s += grad[i, j]
        lse = np.log(s)
        t = top[i]
        lsum = zero
        for j in range(k):
            lp = (z[i, j] - t) - lse
            lsum += lp
            grad[i, j] = lp
        per = -grad[i, y[i]]
        if spread != zero:
            per = keep * per - spread * lsum
        total += per
    if spread != zero:
        for q in range(m * k):
            flat[q] = np.exp(flat[q]) - spread
    else:
        for q in range(m * k):
            flat[q] = np.exp(flat[q])
    for i in range(m):
        grad[i, y[i]] -= keep
    for q in range(m * k):
        flat[q] = flat[q] / fm
    return total, hits, -1


@numba.njit(**_OPTS)
def relu_dropout_forward(a, positive, seed, threshold, scale, mask):  # pragma: no cover
    """In place on a 1-D ``a``: ReLU then inverted dropout (twins: :func:`relu_forward`, then
    :func:`dropout_forward` on its output): ``positive = a > 0``, ``a = max(a, 0)`` (NaN
    passes), ``mask = scale * (bits < threshold)`` with the bits of
    :func:`deepfit.nn.dropout.mask_bits`, ``a = a * mask``."""
    n = a.shape[0]
    zero = a.dtype.type(0)
    for k in range(n // 2):
        h = _splitmix64(seed, k)
        lo = scale if (h & _LOW32) < threshold else zero
        hi = scale if (h >> np.uint64(32)) < threshold else zero
        q = 2 * k
        x = a[q]
        positive[q] = x > zero
        mask[q] = lo
        a[q] = (zero if x <= zero else x) * lo
        x = a[q + 1]
        positive[q + 1] = x > zero
        mask[q + 1] = hi
        a[q + 1] = (zero if x <= zero else x) * hi
    if n % 2:
        h = _splitmix64(seed, n // 2)
        m = scale if (h & _LOW32) < threshold else zero
        x = a[n - 1]
        positive[n - 1] = x > zero
        mask[n - 1] = m
        a[n - 1] = (zero if x <= zero else x) * m


@numba.njit(**_OPTS)
def dropout_relu_backward(da, mask, positive, out):  # pragma: no cover
    """``out = (da * mask) * positive`` on 1-D arrays (twins: Dropout's ``da * mask``, then
    :func:`mask_multiply`); ``out`` may be ``da``."""
    one = da.dtype.type
    for i in range(da.shape[0]):
        out[i] = (da[i] * mask[i]) * one(positive[i])


@numba.njit(**_OPTS)
def column_sum(a, out):  # pragma: no cover
    """``out = a.sum(axis=0)`` for a C-ordered ``(m, n)`` ``a`` with ``m >= 1``, the rows added
    in order as NumPy adds them (``out = a_0``, then ``out += a_i``): the same numbers."""
    m, n = a.shape
    for j in range(n):
        out[j] = a[0, j]
    for i in range(1, m):
        for j in range(n):
            out[j] += a[i, j]


@numba.njit(**_OPTS)
def relu_backward_bias(da, positive, dz, db):  # pragma: no cover
    """ReLU's backward with the bias gradient of the ``Dense`` layer in front, on C-ordered
    ``(m, n)`` arrays, ``m >= 1``: ``dz = da * positive`` (twin: :func:`mask_multiply`) and
    ``db = dz.sum(axis=0)`` with the rows added in NumPy's order (twin: :func:`column_sum`)."""
    m, n = da.shape
    one = da.dtype.type
    for j in range(n):
        d = da[0, j] * one(positive[0, j])
        dz[0, j] = d
        db[j] = d
    for i in range(1, m):
        for j in range(n):
            d = da[i, j] * one(positive[i, j])
            dz[i, j] = d
            db[j] += d
