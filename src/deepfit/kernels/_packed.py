"""The numba kernels of packed networks (imported only when numba is installed and the JIT is on).

Arrays carry the member axis first (``(K, m, n)`` activations, ``(K, n)`` flattened
parameters) and every per-member scalar arrives as a row of a ``(K, .)`` array already cast
to the arrays' dtype. Each loop body performs the float operations of its NumPy twin in
:mod:`deepfit.nn.packed` and :mod:`deepfit.optim.packed` in the same order, with ``fastmath``
off, so both paths give the same numbers bit for bit; member ``k``'s numbers are also those of
the single-network kernels of :mod:`deepfit.kernels._jit` on its own run.
"""

from __future__ import annotations

import numba
import numpy as np

from deepfit.kernels._jit import _OPTS, dropout_forward


@numba.njit(**_OPTS)
def packed_adam_step(p, g, v, s, scalars, active, decay):  # pragma: no cover
    """Adam with per-member scalars on ``(K, n)`` arrays (twin:
    :meth:`deepfit.optim.packed.PackedScaleByAdam.update_` then the step of
    :meth:`deepfit.optim.packed.PackedOptimizer.step`)::

        v_k = b1_k v_k + (1 - b1_k) g_k        s_k = b2_k s_k + (1 - b2_k) g_k^2
        u_k = v_k / (sqrt(s_k / (1 - b2_k^t)) + eps_k) / (1 - b1_k^t)  [+ wd_k p_k if decay]
        p_k = p_k - u_k lr_k                   (frozen members: moments only, p_k stays)

    ``scalars[k] = [b1, 1 - b1, b2, 1 - b2, 1 - b1^t, 1 - b2^t, eps, wd, lr]``."""
    n_members, n = p.shape
    for k in range(n_members):
        b1, c1, b2, c2 = scalars[k, 0], scalars[k, 1], scalars[k, 2], scalars[k, 3]
        bc1, bc2, eps, wd, lr = (
            scalars[k, 4],
            scalars[k, 5],
            scalars[k, 6],
            scalars[k, 7],
            scalars[k, 8],
        )
        moving = active[k]
        for i in range(n):
            gi = g[k, i]
            vi = v[k, i] * b1 + c1 * gi
            si = s[k, i] * b2 + c2 * (gi * gi)
            v[k, i] = vi
            s[k, i] = si
            if moving:
                u = vi / (np.sqrt(si / bc2) + eps) / bc1
                if decay:
                    u = u + wd * p[k, i]
                p[k, i] = p[k, i] - u * lr


@numba.njit(**_OPTS)
def bias_relu_dropout_forward(z, b, positive, seeds, thresholds, scales, mask):  # pragma: no cover
    """In place on a C-ordered ``(K, m, n)`` ``z``: ``a = max(z + b_k, 0)`` (NaN passes through),
    ``positive = z + b_k > 0``, then inverted dropout ``z = a * mask`` with member ``k``'s
    mask ``scales[k] * (bits_k < thresholds[k])`` from the counter-based bits of
    :func:`deepfit.nn.dropout.mask_bits` of ``seeds[k]`` over its ``m * n`` entries in C
    order (twin: ``z += b``, ReLU, :class:`deepfit.nn.packed.PackedDropout`).

    A member with ``thresholds[k] == 0`` keeps everything (its mask is 1 and nothing is
    multiplied); ``mask`` may have size 0 when no member drops (then only the ReLU runs)."""
    n_members, m, n = z.shape
    zero = z.dtype.type(0)
    one = z.dtype.type(1)
    size = m * n
    for k in range(n_members):
        zk = z[k]
        bk = b[k]
        pk = positive[k]
        for i in range(m):  # bias and ReLU: a branch-free loop that vectorizes
            for j in range(n):
                zi = zk[i, j] + bk[j]
                pk[i, j] = zi > zero
                zk[i, j] = zero if zi <= zero else zi
        if mask.size == 0:
            continue
        flat = zk.reshape(size)
        mk = mask[k].reshape(size)
        thr = thresholds[k]
        if thr == 0:
            for t in range(size):
                mk[t] = one
            continue
        dropout_forward(flat, seeds[k], thr, scales[k], flat, mk)  # the single kernel, in place


@numba.njit(**_OPTS)
def relu_dropout_backward(dy, positive, mask, dz, db):  # pragma: no cover
    """Backward through dropout and ReLU into the ``Dense`` in front, on ``(K, m, n)`` arrays:
    ``dz = (dy * mask) * [positive]`` (``mask`` of size 0: no dropout, ``dz = dy *
    [positive]``) and the bias gradient ``db_k = sum_i dz_k,i`` summed row after row from 0
    (twin: ``Dropout.backward``, ``ReLU.backward``, ``dz.sum(axis=1)``)."""
    n_members, m, n = dy.shape
    zero = dy.dtype.type(0)
    one = dy.dtype.type(1)
    dropping = mask.size > 0
    for k in range(n_members):
        for j in range(n):
            db[k, j] = zero
        for i in range(m):
            for j in range(n):
                d = dy[k, i, j]
                if dropping:
                    d = d * mask[k, i, j]
                d = d * (one if positive[k, i, j] else zero)
                dz[k, i, j] = d
                db[k, j] += d


@numba.njit(**_OPTS)
def bias_grad(dz, db):  # pragma: no cover
    """``db_k = sum_i dz_k,i`` of a C-ordered ``(K, m, n)`` ``dz``, summed row after row from 0
    (twin: ``dz.sum(axis=1)``, which NumPy sums so for ``n > 1``)."""
    n_members, m, n = dz.shape
    zero = dz.dtype.type(0)
    for k in range(n_members):
        for j in range(n):
            db[k, j] = zero
        for i in range(m):
            for j in range(n):
                db[k, j] += dz[k, i, j]


@numba.njit(**_OPTS)
def add_scaled(dw, w, c):  # pragma: no cover
    """``dw_k = dw_k + c_k * w_k`` on C-ordered ``(K, n)`` arrays, ``c`` of length ``K`` in the
    arrays' dtype (the L2 penalty's gradient; twin: ``dW += c[:, None, None] * W``)."""
    n_members, n = dw.shape
    for k in range(n_members):
        ck = c[k]
        for i in range(n):
            dw[k, i] = dw[k, i] + ck * w[k, i]
