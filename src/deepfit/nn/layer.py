"""The Layer contract shared by every building block of a network."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from deepfit.backend import resolve_dtype


class Layer:
    """Base class: ``forward(x, training) -> y`` and ``backward(dy) -> dx``.

    Contract
    --------
    - Data is laid out ``(batch, features)``.
    - ``params`` and ``grads`` are dicts with the same keys; optimizers update the
      ``params`` arrays in place, and ``backward`` assigns (never accumulates) into the
      ``grads`` arrays and never mutates ``dy``.
    - ``buffers`` holds state that is not trained (batch-norm running statistics).
    - A layer caches what ``backward`` needs only when ``forward`` runs with
      ``training=True``; calling ``backward`` without such a forward is an error.
    - ``decay_keys`` names the parameters that weight penalties (L2, L1, decoupled weight
      decay) act on: weight matrices, never biases or batch-norm's gamma/beta.
    """

    decay_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.buffers: dict[str, Any] = {}

    def forward(self, x: Any, training: bool = False) -> Any:
        raise NotImplementedError

    def backward(self, dy: Any) -> Any:
        raise NotImplementedError

    def backward_params(self, dy: Any) -> None:
        """Fill ``grads`` like :meth:`backward` without returning ``dx``.

        For the first layer of a model, whose input gradient nobody needs; layers that can
        skip work for it (``Dense`` skips the product ``dz W^T``) override this.
        """
        self.backward(dy)

    def to(self, backend: str) -> Layer:
        """Move every parameter, gradient and buffer to ``backend`` (``"numpy"``/``"cpu"`` or
        ``"cupy"``/``"gpu"``), in place; returns ``self``. Build optimizers after moving."""
        from deepfit.backend import get_backend, to_numpy

        xp = get_backend(backend)
        return self._replace_arrays(to_numpy if xp is np else xp.asarray)

    def astype(self, dtype: Any) -> Layer:
        """Convert every parameter, gradient and buffer to ``dtype`` (float32 or float64)."""
        dt = resolve_dtype(dtype)
        return self._replace_arrays(lambda value: value.astype(dt))

    def _replace_arrays(self, convert: Any) -> Layer:
        """Replace every parameter, gradient and buffer by ``convert(array)``; forget caches."""
        for store in (self.params, self.grads, self.buffers):
            for key, value in store.items():
                store[key] = convert(value)
        self._clear_cache()
        return self

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (its arrays aside), as plain data:
        ``{"type": class name, ...}``."""
        return {"type": type(self).__name__}

    def _clear_cache(self) -> None:
        """Forget what the last training-mode forward cached."""

    def _missing_cache(self) -> RuntimeError:
        return RuntimeError(
            f"{self!r}.backward() called without a preceding forward(x, training=True)"
        )

    @property
    def dtype(self) -> np.dtype | None:
        for value in self.params.values():
            return value.dtype
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
