"""How many threads NumPy's BLAS may use while a network trains (``train.threads``).

OpenBLAS splits every matrix product over all the cores it finds. For the products of a
tabular MLP (a batch of 128 rows through a 12 x 128 layer: 0.2 million multiply-adds) the
split gains nothing on idle cores and costs many times the product as soon as anything else
runs on the machine: the product waits for a helper thread the scheduler has not run yet.
``bench/threads.py`` measures both (``bench/threads.md``).

So ``threads = 0`` (automatic, the default) trains on one BLAS thread when the largest
product of a step is below :data:`SMALL_PRODUCT` multiply-adds (``batch x n_in x n_out`` of
the widest dense layer; a packed layer makes one such product per member), and leaves BLAS
as it is configured otherwise; ``threads = n`` caps BLAS at ``n`` threads for the training
(``torch.set_num_threads``'s role). The cap holds for the duration of ``fit`` only, set with
threadpoolctl; without threadpoolctl the automatic mode leaves BLAS alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from deepfit.errors import DeepfitError

#: Below this many multiply-adds in a step's largest product, training uses one BLAS thread.
SMALL_PRODUCT = 1 << 23


def check_threads(threads: Any) -> int:
    """``threads`` as an int >= 0 (0: automatic), or one line saying what is wrong."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise DeepfitError(f"threads must be an integer >= 0 (0: automatic), got {threads!r}")
    return threads


def _dense_layers(layers: Any) -> Iterator[Any]:
    """The layers with a weight matrix ``W`` of ``n_in x n_out``, residual blocks opened."""
    for layer in layers:
        block = getattr(layer, "f", None)
        if block is not None:
            yield from _dense_layers(block.layers)
        elif hasattr(layer, "n_in") and hasattr(layer, "n_out") and "W" in layer.params:
            yield layer


def largest_product(model: Any, batch_size: int) -> int:
    """Multiply-adds of the largest matrix product in a training step of ``model``:
    ``batch_size x n_in x n_out`` of its widest dense layer (a packed layer's batched product
    is one BLAS call per member, each of that size)."""
    sizes = [int(d.n_in) * int(d.n_out) for d in _dense_layers(getattr(model, "layers", ()))]
    return batch_size * max(sizes, default=0)


def blas_threads(threads: int, model: Any, batch_size: int) -> int | None:
    """The BLAS thread cap for training ``model`` in batches of ``batch_size`` (``None``:
    leave BLAS alone)."""
    if threads:
        return threads
    return 1 if largest_product(model, batch_size) < SMALL_PRODUCT else None


_CONTROLLER: list[Any] = []  # threadpoolctl's view of the loaded libraries, made once


def _controller() -> Any:
    """A ``threadpoolctl.ThreadpoolController`` (scanning the libraries takes about a
    millisecond; a limit through it, 10 microseconds), or None without threadpoolctl."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


@contextlib.contextmanager
def limit_blas(threads: int, model: Any, batch_size: int) -> Iterator[None]:
    """Cap NumPy's BLAS threads as :func:`blas_threads` says while the block runs (NumPy's
    BLAS is loaded with NumPy, so the controller made at the first call sees it)."""
    cap = blas_threads(threads, model, batch_size)
    controller = _controller() if cap is not None else None
    if controller is None:
        if cap is not None and threads:
            raise DeepfitError(
                f"threads = {threads} needs threadpoolctl: pip install 'deepfit[fast]'"
            )
        yield
        return
    with controller.limit(limits=cap, user_api="blas"):
        yield
