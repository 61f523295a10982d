"""A stack of layers applied in order, and the ``mlp`` builder."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from deepfit.backend import RNGLike, array_module, as_generator, resolve_dtype, to_numpy
from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn.activations import LeakyReLU, ReLU, Sigmoid, Tanh, get_activation
from deepfit.nn.batchnorm import BatchNorm
from deepfit.nn.dense import Dense
from deepfit.nn.dropout import Dropout
from deepfit.nn.init import Initializer
from deepfit.nn.layer import Layer


class Sequential:
    """Layers applied one after the other: ``y = f_L(... f_2(f_1(x)))``.

    Parameters, gradients and buffers are exposed under qualified names ``"<index>.<key>"``
    (``"0.W"``, ``"1.gamma"``, ``"1.running_mean"``), unique across the model and stable
    across save and load; the arrays are the layers' own, so in-place updates reach them.
    """

    def __init__(self, layers: Sequence[Layer]) -> None:
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise DeepfitError(
                    f"Sequential layer {i} is a {type(layer).__name__}, not a deepfit Layer"
                )
        self.layers = layers

    # -- computation -------------------------------------------------------------------
    def forward(self, x: Any, training: bool = False) -> Any:
        """Run every layer on ``x`` (cast to the model's dtype)."""
        dtype = self.dtype
        if dtype is not None:
            xp = self._module()
            x = xp.asarray(x, dtype=dtype)
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dy: Any, *, input_grad: bool = True) -> Any:
        """Backpropagate ``dy`` (gradient w.r.t. the output); fills ``grads``; returns dx.

        With ``input_grad=False`` the gradient with respect to the input is not computed
        (training never needs it, and for a first ``Dense`` layer it is a whole matrix
        product) and ``None`` is returned.
        """
        layers = self.layers
        for layer in reversed(layers[1:] if not input_grad else layers):
            dy = layer.backward(dy)
        if not input_grad:
            if layers:
                layers[0].backward_params(dy)
            return None
        return dy

    __call__ = forward

    def predict(self, x: Any, batch_size: int = 4096) -> np.ndarray:
        """Outputs (logits) in inference mode, computed ``batch_size`` rows at a time.

        Apply the loss's ``output`` to turn logits into probabilities.
        """
        x = np.asarray(x) if array_module(x) is np else x
        if x.ndim != 2:
            raise ShapeError(f"predict expects a 2-D array (rows, features), got shape {x.shape}")
        chunks = [
            to_numpy(self.forward(x[i : i + batch_size], training=False))
            for i in range(0, x.shape[0], batch_size)
        ]
        if not chunks:
            return np.zeros((0, self.n_outputs or 0), dtype=self.dtype)
        return np.concatenate(chunks)

    def _module(self):
        for layer in self.layers:
            for value in layer.params.values():
                return array_module(value)
        return np

    # -- parameters ----------------------------------------------------------------------
    def _named(self, store: str) -> dict[str, Any]:
        return {
            f"{i}.{key}": value
            for i, layer in enumerate(self.layers)
            for key, value in getattr(layer, store).items()
        }

    @property
    def params(self) -> dict[str, Any]:
        """Trainable arrays by qualified name (the layers' own arrays, not copies)."""
        return self._named("params")

    @property
    def grads(self) -> dict[str, Any]:
        """Gradient arrays by qualified name, same keys as ``params``."""
        return self._named("grads")

    @property
    def buffers(self) -> dict[str, Any]:
        """Non-trainable state (batch-norm running statistics) by qualified name."""
        return self._named("buffers")

    def decay_names(self) -> list[str]:
        """Qualified names of the weight matrices that penalties and weight decay act on."""
        return [
            f"{i}.{key}"
            for i, layer in enumerate(self.layers)
            for key in layer.decay_keys
            if key in layer.params
        ]

    def parameters(self) -> Iterator[tuple[str, Any, Any]]:
        """Yield ``(name, param, grad)`` for every trainable array."""
        grads = self.grads
        for name, p in self.params.items():
            yield name, p, grads[name]

    @property
    def n_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    @property
    def dtype(self) -> np.dtype | None:
        for layer in self.layers:
            if layer.dtype is not None:
                return layer.dtype
        return None

    @property
    def n_outputs(self) -> int | None:
        for layer in reversed(self.layers):
            if isinstance(layer, Dense):
                return layer.n_out
        return None

    def astype(self, dtype: Any) -> Sequential:
        """Convert every parameter, gradient and buffer to ``dtype``; returns ``self``.

        The arrays are replaced, so build optimizers after converting.
        """
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def to(self, backend: str) -> Sequential:
        """Move every parameter, gradient and buffer to ``backend``: ``"numpy"`` (or
        ``"cpu"``) or ``"cupy"`` (or ``"gpu"``); returns ``self``.

        The arrays are replaced, so build (or re-create) optimizers after moving; an
        optimizer's state follows its parameters to their device at the next step. Inputs
        may be NumPy arrays either way (they are moved batch by batch), and ``predict``
        returns NumPy arrays.
        """
        for layer in self.layers:
            layer.to(backend)
        return self

    @property
    def device(self) -> str:
        """``"cupy"`` when the parameters are CuPy arrays, else ``"numpy"``."""
        for layer in self.layers:
            for value in layer.params.values():
                return "numpy" if array_module(value) is np else "cupy"
        return "numpy"

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer as NumPy arrays, by qualified name."""
        state = {name: to_numpy(v).copy() for name, v in self.params.items()}
        state.update({name: to_numpy(v).copy() for name, v in self.buffers.items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy ``state`` into the model's arrays in place (dtype converted as needed).

        Every key must be present with the right shape, and no key may be left over:
        a mismatch is refused, naming the key and both shapes, before anything is changed.
        """
        targets = {**self.params, **self.buffers}
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected {', '.join(unexpected)}")
            raise DeepfitError(f"state dict does not match the model: {'; '.join(parts)}")
        for name, target in targets.items():
            if tuple(np.shape(state[name])) != tuple(target.shape):
                raise ShapeError(
                    f"state dict entry {name!r} has shape {tuple(np.shape(state[name]))}, "
                    f"the model expects {tuple(target.shape)}"
                )
        for name, target in targets.items():
            xp = array_module(target)
            target[...] = xp.asarray(state[name], dtype=target.dtype)

    # -- architecture as data ----------------------------------------------------------------
    def config(self) -> list[dict[str, Any]]:
        """The architecture as a list of layer configs (JSON-ready; no arrays)."""
        return [layer.config() for layer in self.layers]

    @classmethod
    def from_config(
        cls, config: Sequence[dict[str, Any]], *, dtype: Any = None, rng: RNGLike = None
    ) -> Sequential:
        """Rebuild a model from :meth:`config` (fresh weights: load a state dict next)."""
        gen = as_generator(rng)
        return cls([layer_from_config(c, i, dtype=dtype, rng=gen) for i, c in enumerate(config)])

    # -- container protocol ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = ",\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (Dense, BatchNorm, Dropout, ReLU, LeakyReLU, Tanh, Sigmoid)
}


def layer_from_config(
    config: dict[str, Any], index: int = 0, *, dtype: Any = None, rng: RNGLike = None
) -> Layer:
    """Build one layer from its ``config()`` dict; a bad entry names the layer index."""
    if not isinstance(config, dict) or config.get("type") not in LAYER_TYPES:
        kind = config.get("type") if isinstance(config, dict) else config
        raise DeepfitError(
            f"layer {index}: unknown layer type {kind!r}; known: {', '.join(LAYER_TYPES)}"
        )
    kwargs = {k: v for k, v in config.items() if k != "type"}
    cls = LAYER_TYPES[config["type"]]
    if cls in (Dense, BatchNorm):
        kwargs["dtype"] = dtype
    if cls in (Dense, Dropout):
        kwargs["rng"] = rng
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise DeepfitError(f"layer {index} ({config['type']}): {exc}") from None


def mlp(
    n_in: int,
    hidden: Sequence[int],
    n_out: int,
    activation: str = "relu",
    init: str | Initializer = "he",
    batchnorm: bool = False,
    keep_prob: float | Sequence[float] = 1.0,
    rng: RNGLike = None,
    *,
    dtype: Any = None,
    bn_momentum: float = 0.9,
) -> Sequential:
    """Build a fully connected network.

    Each hidden layer is ``Dense -> [BatchNorm] -> activation -> [Dropout]``, followed by a
    final ``Dense(hidden[-1], n_out)`` that emits logits for the loss. With batch norm the
    hidden Dense layers have no bias (batch norm's ``beta`` takes its place: the mean
    subtraction cancels any ``b``). Dropout layers are added only where ``keep_prob < 1``.

    Parameters
    ----------
    keep_prob : float or sequence of floats
        One keep probability for every hidden layer, or one per hidden layer.
    rng : Generator or int, optional
        One stream for every initial weight and every dropout mask.
    """
    hidden = list(hidden)
    for i, width in enumerate(hidden):
        if not isinstance(width, (int, np.integer)) or width < 1:
            raise DeepfitError(f"mlp hidden[{i}] must be a positive integer, got {width!r}")
    if isinstance(keep_prob, (int, float)):
        keep_probs = [float(keep_prob)] * len(hidden)
    else:
        keep_probs = [float(k) for k in keep_prob]
        if len(keep_probs) != len(hidden):
            raise DeepfitError(
                f"mlp keep_prob has {len(keep_probs)} values for {len(hidden)} hidden layers"
            )
    gen = as_generator(rng)
    dt = resolve_dtype(dtype)
    layers: list[Layer] = []
    width_in = n_in
    for width, kp in zip(hidden, keep_probs, strict=True):
        width = int(width)
        layers.append(Dense(width_in, width, init, bias=not batchnorm, rng=gen, dtype=dt))
        if batchnorm:
            layers.append(BatchNorm(width, momentum=bn_momentum, dtype=dt))
        layers.append(get_activation(activation))
        if kp < 1.0:
            layers.append(Dropout(kp, rng=gen))
        elif kp != 1.0:
            raise DeepfitError(f"mlp keep_prob must be in (0, 1], got {kp}")
        width_in = width
    layers.append(Dense(width_in, n_out, init, rng=gen, dtype=dt))
    return Sequential(layers)
