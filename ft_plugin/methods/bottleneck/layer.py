"""The bottleneck adapter layer: wraps a whole block and adapts its output."""

from __future__ import annotations

import math
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from .config import BottleneckConfig

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}

MERGE_ERROR = (
    "Bottleneck adapters cannot be merged into the base weights: the non-linearity between "
    "the down and up projections means no equivalent weight update exists. Keep the adapter "
    "separate (PeftModel.from_pretrained) or drop it with unload()."
)


class BottleneckMergeError(ValueError):
    """Raised on any attempt to merge a bottleneck adapter into the base weights."""

    def __init__(self, message: str = MERGE_ERROR) -> None:
        super().__init__(message)


def infer_output_features(block: nn.Module) -> int | None:
    """Width of ``block``'s output: ``out_features`` of its last linear layer.

    Attention and MLP blocks register their output projection last (``o_proj``,
    ``down_proj``, GPT-2's ``c_proj``), and its width is the residual stream's.
    """
    from transformers.pytorch_utils import Conv1D

    width = None
    for module in block.modules():
        if isinstance(module, nn.Linear):
            width = module.out_features
        elif isinstance(module, Conv1D):
            width = module.nf
        elif hasattr(module, "out_features") and isinstance(module.out_features, int):
            width = module.out_features  # quantized linears (bitsandbytes, GPTQ, ...)
    return width


class BottleneckLayer(nn.Module, BaseTunerLayer):
    """A block whose output gets ``h + up(dropout(act(down(h))))`` per active adapter.

    ``base_layer`` is the original block (e.g. a Llama attention or MLP module). When it
    returns a tuple, such as Llama attention's ``(hidden_states, attn_weights)``, only
    element 0 is adapted and the rest is passed through. Several named adapters can live
    side by side; all active ones add their update computed from the same block output.
    """

    adapter_layer_names = ("bottleneck_down", "bottleneck_up")
    other_param_names = ("bottleneck_act", "bottleneck_dropout", "bottleneck_size")

    def __init__(
        self,
        base_layer: nn.Module,
        adapter_name: str,
        config: BottleneckConfig,
        hidden_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.bottleneck_down = nn.ModuleDict({})
        self.bottleneck_up = nn.ModuleDict({})
        self.bottleneck_act = nn.ModuleDict({})
        self.bottleneck_dropout = nn.ModuleDict({})
        self.bottleneck_size: dict[str, int] = {}
        self._disable_adapters = False
        self.merged_adapters = []

        hidden = hidden_size or infer_output_features(self.get_base_layer())
        if not hidden:
            raise ValueError(
                f"Cannot tell the output width of {type(base_layer).__name__}: it has no linear "
                "layer. Target blocks such as attention or MLP modules."
            )
        self.hidden_size = int(hidden)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def update_layer(self, adapter_name: str, config: BottleneckConfig, **kwargs: Any) -> None:
        """Add (or replace) the adapter ``adapter_name`` on this block."""
        size = config.bottleneck_size
        self.bottleneck_size[adapter_name] = size
        self.bottleneck_down[adapter_name] = nn.Linear(self.hidden_size, size, bias=True)
        self.bottleneck_up[adapter_name] = nn.Linear(size, self.hidden_size, bias=True)
        self.bottleneck_act[adapter_name] = _ACTIVATIONS[config.non_linearity]()
        self.bottleneck_dropout[adapter_name] = (
            nn.Dropout(p=config.adapter_dropout) if config.adapter_dropout > 0 else nn.Identity()
        )
        self.reset_bottleneck_parameters(adapter_name, config.init_scale)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)

    def reset_bottleneck_parameters(self, adapter_name: str, init_scale: float = 0.0) -> None:
        """Down: ``nn.Linear``'s default init; up: zeros (exact identity) or N(0, init_scale)."""
        if adapter_name not in self.bottleneck_down:
            return
        down = self.bottleneck_down[adapter_name]
        if down.weight.device.type == "meta":
            return
        nn.init.kaiming_uniform_(down.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(down.in_features)
        nn.init.uniform_(down.bias, -bound, bound)
        up = self.bottleneck_up[adapter_name]
        if init_scale > 0:
            nn.init.trunc_normal_(up.weight, std=init_scale, a=-2 * init_scale, b=2 * init_scale)
        else:
            nn.init.zeros_(up.weight)
        nn.init.zeros_(up.bias)

    def _get_base_layer_device_and_dtype(self, base_layer: nn.Module):
        # A block has no `.weight`; use its first floating-point parameter instead.
        for param in base_layer.parameters():
            if param.is_floating_point():
                return param.device, param.dtype
        return super()._get_base_layer_device_and_dtype(base_layer)

    def _adapt(self, hidden: torch.Tensor) -> torch.Tensor:
        result = hidden
        for name in self.active_adapters:
            if name not in self.bottleneck_down:
                continue
            down = self.bottleneck_down[name]
            x = self._cast_input_dtype(hidden, down.weight.dtype)
            delta = self.bottleneck_up[name](
                self.bottleneck_dropout[name](self.bottleneck_act[name](down(x)))
            )
            result = result + delta.to(hidden.dtype)
        return result

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        output = self.base_layer(*args, **kwargs)
        if self.disable_adapters or not any(
            a in self.bottleneck_down for a in self.active_adapters
        ):
            return output
        if isinstance(output, torch.Tensor):
            return self._adapt(output)
        if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
            return type(output)([self._adapt(output[0]), *output[1:]])
        raise TypeError(
            f"Bottleneck adapter on {type(self.base_layer).__name__}: expected the block to return "
            f"a tensor or a tuple starting with one, got {type(output).__name__}"
        )

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        raise BottleneckMergeError()

    def unmerge(self) -> None:
        # Nothing is ever merged, so there is nothing to undo.
        return None

    def __getattr__(self, name: str) -> Any:
        # Forward reads of the block's own attributes (layer_idx, config, ...) so code that
        # inspects e.g. `decoder_layer.self_attn.layer_idx` keeps working.
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer" or "base_layer" not in self.__dict__.get("_modules", {}):
                raise
            return getattr(self._modules["base_layer"], name)

    def __repr__(self) -> str:
        return "bottleneck." + super().__repr__()
