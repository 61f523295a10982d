"""What maps inputs to outputs, and gradients back."""

from deepfit.nn import init
from deepfit.nn.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from deepfit.nn.batchnorm import BatchNorm
from deepfit.nn.dense import Dense
from deepfit.nn.dropout import Dropout
from deepfit.nn.embedding import EmbedColumns, Embedding
from deepfit.nn.layer import Layer
from deepfit.nn.layernorm import LayerNorm
from deepfit.nn.losses import Loss, MeanSquaredError, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from deepfit.nn.objective import cost, cost_and_gradients, forward_backward, make_penalties
from deepfit.nn.penalties import L1, L2, Penalty
from deepfit.nn.residual import Residual
from deepfit.nn.sequential import Sequential, layer_from_config, mlp

__all__ = [
    "L1",
    "L2",
    "BatchNorm",
    "Dense",
    "Dropout",
    "EmbedColumns",
    "Embedding",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "Loss",
    "MeanSquaredError",
    "Penalty",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "SigmoidBinaryCrossEntropy",
    "SoftmaxCrossEntropy",
    "Tanh",
    "cost",
    "cost_and_gradients",
    "forward_backward",
    "init",
    "layer_from_config",
    "make_penalties",
    "mlp",
]
