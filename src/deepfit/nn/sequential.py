"""A stack of layers applied in order, and the ``mlp`` builder."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from deepfit.backend import RNGLike, array_module, as_generator, resolve_dtype, to_numpy
from deepfit.errors import DeepfitError, ShapeError
from deepfit.flat import flat_base
from deepfit.nn.activations import LeakyReLU, ReLU, Sigmoid, Tanh, get_activation
from deepfit.nn.batchnorm import BatchNorm
from deepfit.nn.dense import Dense
from deepfit.nn.dropout import Dropout
from deepfit.nn.embedding import EmbedColumns, Embedding
from deepfit.nn.init import Initializer
from deepfit.nn.layer import Layer
from deepfit.nn.layernorm import LayerNorm


class Sequential:
    """Layers applied one after the other: ``y = f_L(... f_2(f_1(x)))``.

    Parameters, gradients and buffers are exposed under qualified names ``"<index>.<key>"``
    (``"0.W"``, ``"1.gamma"``, ``"1.running_mean"``), unique across the model and stable
    across save and load; the arrays are the layers' own, so in-place updates reach them.
    A layer that contains layers (:class:`~deepfit.nn.residual.Residual`) qualifies its
    inner names itself, so they nest: ``"2.f.1.W"`` is the ``W`` of layer 1 of block 2's
    ``f``.
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
        """Run every layer on ``x`` (cast to the model's dtype).

        A ``Dense`` layer with a bias followed by a ``ReLU`` runs as one product and one
        fused pass ``max(x W + b, 0)`` (:meth:`Dense.forward_linear`,
        :meth:`ReLU.forward_biased`), and in training a ``BatchNorm`` followed by a ``ReLU``
        (and a ``Dropout``) as :meth:`BatchNorm.forward_relu`: the same numbers and caches as
        the layers' own calls. :meth:`backward` fuses the same groups back
        (:meth:`BatchNorm.backward_relu`).
        """
        first = self._first_param()
        if first is not None and (type(x) is not type(first) or x.dtype is not first.dtype):
            xp = np if type(first) is np.ndarray else array_module(first)
            x = xp.asarray(x, dtype=first.dtype)
        layers = self.layers
        i, n = 0, len(layers)
        while i < n:
            layer = layers[i]
            if type(layer) is Dense and i + 1 < n and type(layers[i + 1]) is ReLU:
                b = layer.params.get("b")
                if b is not None:
                    z = layer.forward_linear(x, training)
                    x = layers[i + 1].forward_biased(z, b, training)
                    i += 2
                    continue
            elif (
                training and type(layer) is BatchNorm and i + 1 < n and type(layers[i + 1]) is ReLU
            ):
                drop = layers[i + 2] if i + 2 < n and type(layers[i + 2]) is Dropout else None
                x = layer.forward_relu(x, layers[i + 1], drop)
                i += 3 if drop is not None else 2
                continue
            x = layer.forward(x, training)
            i += 1
        return x

    def backward(self, dy: Any, *, input_grad: bool = True) -> Any:
        """Backpropagate ``dy`` (gradient w.r.t. the output); fills ``grads``; returns dx.

        With ``input_grad=False`` the gradient with respect to the input is not computed
        (training never needs it, and for a first ``Dense`` layer it is a whole matrix
        product) and ``None`` is returned.
        """
        layers = self.layers
        stop = 0 if input_grad else 1
        i = len(layers) - 1
        while i >= stop:
            layer = layers[i]
            kind = type(layer)
            if kind is ReLU or kind is Dropout:  # the end of BatchNorm -> ReLU [-> Dropout]?
                j = i - 1 if kind is ReLU else i - 2
                if (
                    j >= stop
                    and type(layers[j]) is BatchNorm
                    and type(layers[j + 1]) is ReLU
                    and (kind is ReLU or j + 2 == i)
                ):
                    dy = layers[j].backward_relu(dy, layers[j + 1], layer if j + 2 == i else None)
                    i = j - 1
                    continue
                # Dense -> ReLU: the bias gradient summed in ReLU's backward pass
                dense = layers[i - 1] if kind is ReLU and i else None
                if type(dense) is Dense and "b" in dense.grads:
                    dz = layer.backward_bias(dy, dense.grads["b"])
                    if dz is not None:
                        if i - 1 >= stop:
                            dy = dense.backward(dz, bias_grad=False)
                            i -= 2
                            continue
                        dense.backward_params(dz, bias_grad=False)  # the first layer
                        return None
            dy = layer.backward(dy)
            i -= 1
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

    def _first_param(self) -> Any:
        for layer in self.layers:
            for value in layer.params.values():
                return value
        return None

    def _module(self):
        for layer in self.layers:
            for value in layer.params.values():
                return array_module(value)
        return np

    # -- parameters ----------------------------------------------------------------------
    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """Every layer, nested ones included (depth first, a container before its contents),
        with its qualified name: ``("0", Dense)``, ..., ``("2", Residual)``,
        ``("2.f.0", LayerNorm)``, ... (PyTorch's ``named_modules``)."""
        for i, layer in enumerate(self.layers):
            name = f"{prefix}{i}"
            yield name, layer
            inner = getattr(layer, "named_layers", None)
            if inner is not None:
                yield from inner(prefix=f"{name}.")

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

    def flatten_parameters(self) -> bool:
        """Put every parameter in one contiguous buffer and every gradient in another.

        Each layer's ``params`` and ``grads`` entries become C-ordered views of segments of
        the two buffers, in the order of :attr:`params` (values copied; see
        :mod:`deepfit.flat`), so an optimizer updates the whole model in one pass. Everything
        per array works as before: the views are the layers' own arrays. Returns whether the
        parameters now tile one buffer (``False``, and nothing changed, when there are none,
        when they differ in dtype, or when they are not NumPy arrays: a CuPy model keeps one
        array per parameter). Already flat: nothing is copied.

        Replacing a layer's array (``Layer.to``, ``Layer.astype``, assigning
        ``layer.params[key]``) takes it out of the buffer; optimizers then update the arrays
        one by one until the next call (:meth:`to`, :meth:`astype` and ``Trainer.fit`` make
        it).
        """
        leaves = [
            layer
            for _, layer in self.named_layers()
            if isinstance(vars(layer).get("params"), dict)  # containers' params are views
        ]
        entries = [(layer, key) for layer in leaves for key in layer.params]
        if not entries:
            return False
        params = [layer.params[key] for layer, key in entries]
        grads = [layer.grads.get(key) for layer, key in entries]
        first = params[0]
        dtype = first.dtype
        if type(first) is not np.ndarray:  # CuPy models keep one array per parameter
            return False
        for p, g in zip(params, grads, strict=True):
            if (
                g is None
                or type(p) is not type(first)
                or type(g) is not type(first)
                or p.dtype != first.dtype
                or g.dtype != first.dtype
                or g.shape != p.shape
            ):
                return False
        if flat_base(params) is not None and flat_base(grads) is not None:
            return True
        xp, total = array_module(first), sum(int(p.size) for p in params)
        del params, grads, first, p, g  # each array is freed as soon as it is copied
        flat_params = xp.empty(total, dtype=dtype)
        flat_grads = xp.empty(total, dtype=dtype)
        start = 0
        for layer, key in entries:
            for store, flat in ((layer.params, flat_params), (layer.grads, flat_grads)):
                value = store[key]
                view = flat[start : start + value.size].reshape(value.shape)
                view[...] = value
                store[key] = view
            start += view.size
        return True

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
    def n_inputs(self) -> int | None:
        """The input width, as the first layer that declares an ``n_in`` gives it (a
        ``Dense``, or the raw table width of an ``EmbedColumns``); ``None`` if none does."""
        for layer in self.layers:
            n_in = getattr(layer, "n_in", None)
            if n_in is not None:
                return n_in
        return None

    @property
    def n_outputs(self) -> int | None:
        """The output width, as the last layer that declares an ``n_out`` gives it."""
        for layer in reversed(self.layers):
            n_out = getattr(layer, "n_out", None)
            if n_out is not None:
                return n_out
        return None

    def astype(self, dtype: Any) -> Sequential:
        """Convert every parameter, gradient and buffer to ``dtype``; returns ``self``.

        The arrays are replaced, so build optimizers after converting.
        """
        for layer in self.layers:
            layer.astype(dtype)
        self.flatten_parameters()
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
        self.flatten_parameters()
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
        model = cls([layer_from_config(c, i, dtype=dtype, rng=gen) for i, c in enumerate(config)])
        model.flatten_parameters()
        return model

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
    cls.__name__: cls
    for cls in (
        Dense,
        BatchNorm,
        LayerNorm,
        Dropout,
        ReLU,
        LeakyReLU,
        Tanh,
        Sigmoid,
        Embedding,
        EmbedColumns,
    )
}
_WITH_DTYPE = (Dense, BatchNorm, LayerNorm, Embedding, EmbedColumns)
_WITH_RNG = (Dense, Dropout, Embedding, EmbedColumns)


def _layer_types() -> dict[str, type[Layer]]:
    from deepfit.nn.residual import Residual  # residual.py builds on Sequential

    return {**LAYER_TYPES, "Residual": Residual}


def layer_from_config(
    config: dict[str, Any], index: int | str = 0, *, dtype: Any = None, rng: RNGLike = None
) -> Layer:
    """Build one layer from its ``config()`` dict; a bad entry names the layer index
    (qualified inside a residual block: ``"2.f.1"``)."""
    types = _layer_types()
    if not isinstance(config, dict) or config.get("type") not in types:
        kind = config.get("type") if isinstance(config, dict) else config
        raise DeepfitError(f"layer {index}: unknown layer type {kind!r}; known: {', '.join(types)}")
    kwargs = {k: v for k, v in config.items() if k != "type"}
    cls = types[config["type"]]
    if config["type"] == "Residual":
        inner = kwargs.get("layers")
        if not isinstance(inner, list) or set(kwargs) != {"layers"}:
            raise DeepfitError(
                f"layer {index} (Residual): config must be {{'type': 'Residual', 'layers': "
                f"[layer configs]}}, got keys {sorted(kwargs)}"
            )
        gen = as_generator(rng)
        return cls(
            [
                layer_from_config(c, f"{index}.f.{j}", dtype=dtype, rng=gen)
                for j, c in enumerate(inner)
            ]
        )
    if cls in _WITH_DTYPE:
        kwargs["dtype"] = dtype
    if cls in _WITH_RNG:
        kwargs["rng"] = rng
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise DeepfitError(f"layer {index} ({config['type']}): {exc}") from None


NORMS = ("batchnorm", "layernorm")
EMBED_KEYS = ("columns", "cardinalities", "dims")


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
    norm: str | None = None,
    residual: bool = False,
    embed: Mapping[str, Sequence[int]] | None = None,
    ensemble: int = 1,
    ensemble_kind: str = "deep",
    ensemble_output: str = "softmax",
) -> Sequential:
    """Build a fully connected network.

    Plain (``residual=False``): each hidden layer is ``Dense -> [norm] -> activation ->
    [Dropout]``, followed by a final ``Dense(hidden[-1], n_out)`` that emits logits for the
    loss. With batch norm the hidden Dense layers have no bias (batch norm's ``beta`` takes
    its place: the mean subtraction cancels any ``b``); layer norm keeps them (it subtracts
    each row's mean over the features, which does not cancel a per-feature ``b``). Dropout
    layers are added only where ``keep_prob < 1``.

    Residual (``residual=True``), the tabular ResNet of Gorishniy et al. 2021 with the skip
    connections of Kadra et al. 2021's cocktail: a ``Dense(n_in, d)`` stem with
    ``d = hidden[0]``, then one block per entry of ``hidden``,
    ``z + f(z)`` with ``f = [norm(d)] -> Dense(d, hidden[i]) -> activation -> [Dropout] ->
    Dense(hidden[i], d)`` (see :class:`~deepfit.nn.residual.Residual`), then the head
    ``[norm(d)] -> activation -> Dense(d, n_out)``. ``d`` is the width of the residual stream;
    each ``hidden[i]`` is its block's inner width.

    Parameters
    ----------
    n_in : int
        Input width (with ``embed``, the raw width, code columns included).
    hidden : sequence of int
        Hidden widths (residual: the blocks' inner widths; ``hidden[0]`` is also the stream's).
    batchnorm : bool
        Same as ``norm="batchnorm"`` (kept for compatibility).
    keep_prob : float or sequence of floats
        One keep probability for every hidden layer (residual: block), or one per hidden
        layer.
    rng : Generator, RandomState or int, optional
        One stream for every initial weight and every dropout mask.
    norm : "batchnorm", "layernorm" or None
        Normalization in each hidden layer (residual: at the start of each block and before
        the head).
    residual : bool
        Build residual blocks instead of a plain stack.
    embed : mapping, optional
        ``{"columns": [...], "cardinalities": [...], "dims": [...]}`` puts an
        :class:`~deepfit.nn.embedding.EmbedColumns` first (what a table preprocessor's
        ``embed_spec()`` returns); the first ``Dense`` then takes its ``n_out`` inputs.
    ensemble : int
        ``K > 1`` builds ``K`` networks trained as one (see :mod:`deepfit.nn.packed`):
        ``ensemble_kind="deep"``, a deep ensemble whose members differ by seed (member ``k``
        is ``mlp(..., rng=child_k)`` with ``child_k`` the ``k``-th ``spawn`` of ``rng``), or
        ``"batch"``, BatchEnsemble / TabM-mini (shared weights, per-member rank-1 scalings).
        It predicts the mean of the members' probabilities (``ensemble_output="softmax"`` or
        ``"sigmoid"``, the loss's output) or values (``"identity"``).
    """
    if ensemble != 1:
        from deepfit.nn.packed import ensemble_mlp  # packed.py builds on Sequential

        return ensemble_mlp(
            n_in,
            hidden,
            n_out,
            ensemble,
            kind=ensemble_kind,
            output=ensemble_output,
            activation=activation,
            init=init,
            batchnorm=batchnorm,
            keep_prob=keep_prob,
            rng=rng,
            dtype=dtype,
            bn_momentum=bn_momentum,
            norm=norm,
            residual=residual,
            embed=embed,
        )
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
    for kp in keep_probs:
        if not 0.0 < kp <= 1.0:
            raise DeepfitError(f"mlp keep_prob must be in (0, 1], got {kp}")
    if norm is not None and norm not in NORMS:
        raise DeepfitError(f"mlp norm must be one of {', '.join(NORMS)} or None, got {norm!r}")
    if batchnorm:
        if norm not in (None, "batchnorm"):
            raise DeepfitError(f"mlp got batchnorm=True and norm={norm!r}; choose one")
        norm = "batchnorm"
    gen = as_generator(rng)
    dt = resolve_dtype(dtype)

    def make_norm(width: int) -> list[Layer]:
        if norm == "batchnorm":
            return [BatchNorm(width, momentum=bn_momentum, dtype=dt)]
        if norm == "layernorm":
            return [LayerNorm(width, dtype=dt)]
        return []

    def make_dropout(kp: float) -> list[Layer]:
        return [Dropout(kp, rng=gen)] if kp < 1.0 else []

    layers: list[Layer] = []
    width_in = n_in
    if embed is not None:
        layers.append(_embed_columns(n_in, embed, gen, dt))
        width_in = layers[0].n_out
    if residual and hidden:
        d = int(hidden[0])
        layers.append(Dense(width_in, d, init, rng=gen, dtype=dt))
        for width, kp in zip(hidden, keep_probs, strict=True):
            block = make_norm(d)
            block.append(Dense(d, int(width), init, rng=gen, dtype=dt))
            block.append(get_activation(activation))
            block += make_dropout(kp)
            block.append(Dense(int(width), d, init, rng=gen, dtype=dt))
            layers.append(_residual(block))
        layers += make_norm(d)
        layers.append(get_activation(activation))
        width_in = d
    else:
        for width, kp in zip(hidden, keep_probs, strict=True):
            width = int(width)
            bias = norm != "batchnorm"
            layers.append(Dense(width_in, width, init, bias=bias, rng=gen, dtype=dt))
            layers += make_norm(width)
            layers.append(get_activation(activation))
            layers += make_dropout(kp)
            width_in = width
    layers.append(Dense(width_in, n_out, init, rng=gen, dtype=dt))
    model = Sequential(layers)
    model.flatten_parameters()
    return model


def _residual(block: list[Layer]) -> Layer:
    from deepfit.nn.residual import Residual  # residual.py builds on Sequential

    return Residual(block)


def _embed_columns(
    n_in: int, embed: Mapping[str, Sequence[int]], rng: np.random.Generator, dtype: np.dtype
) -> EmbedColumns:
    if isinstance(embed, EmbedColumns) or not isinstance(embed, Mapping):
        raise DeepfitError(
            f"mlp embed must be a mapping with keys {', '.join(EMBED_KEYS)}, got "
            f"{type(embed).__name__}"
        )
    unknown = sorted(set(embed) - set(EMBED_KEYS))
    missing = [k for k in EMBED_KEYS if k not in embed]
    if unknown or missing:
        problem = f"unknown key {unknown[0]!r}" if unknown else f"missing key {missing[0]!r}"
        raise DeepfitError(f"mlp embed: {problem}; expected keys {', '.join(EMBED_KEYS)}")
    return EmbedColumns(
        n_in, embed["columns"], embed["cardinalities"], embed["dims"], rng=rng, dtype=dtype
    )
