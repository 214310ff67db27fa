"""The PEFT tuner that injects bottleneck adapters into a model."""

from __future__ import annotations

from typing import Any

from peft.tuners.tuners_utils import BaseTuner, check_target_module_exists
from torch import nn

from .config import DEFAULT_TARGET_MODULES, FALLBACK_TARGET_MODULES, BottleneckConfig
from .layer import BottleneckLayer, BottleneckMergeError, infer_output_features


class BottleneckModel(BaseTuner):
    """Houlsby-style bottleneck adapters as a PEFT tuner (``peft_type`` ``BOTTLENECK``).

    Wraps each targeted block (by default every layer's ``self_attn`` and ``mlp``) in a
    :class:`~ft_plugin.methods.bottleneck.layer.BottleneckLayer`. Use it through PEFT::

        import ft_plugin.methods.bottleneck  # registers the method with PEFT
        from peft import get_peft_model
        model = get_peft_model(base, BottleneckConfig(bottleneck_size=64))

    Adapters cannot be merged (``merge_and_unload``/``merge_adapter`` raise
    :class:`~ft_plugin.methods.bottleneck.layer.BottleneckMergeError`); ``unload()``
    removes them and returns the untouched base model.
    """

    prefix: str = "bottleneck_"
    tuner_layer_cls = BottleneckLayer
    target_module_mapping = DEFAULT_TARGET_MODULES

    def _prepare_adapter_config(
        self, peft_config: BottleneckConfig, model_config: dict[str, Any]
    ) -> BottleneckConfig:
        if peft_config.target_modules is None:
            model_type = model_config.get("model_type")
            peft_config.target_modules = set(
                self.target_module_mapping.get(model_type, FALLBACK_TARGET_MODULES)
            )
        return peft_config

    @staticmethod
    def _check_target_module_exists(peft_config: BottleneckConfig, key: str) -> Any:
        return check_target_module_exists(peft_config, key)

    def _create_and_replace(
        self,
        peft_config: BottleneckConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        **optional_kwargs: Any,
    ) -> None:
        if isinstance(target, BottleneckLayer):
            target.update_layer(adapter_name, peft_config)
            return
        if isinstance(parent, BottleneckLayer) or any(
            isinstance(m, BottleneckLayer) for m in target.modules()
        ):
            raise ValueError(
                f"Bottleneck target {current_key!r} is nested inside or around another targeted "
                "block; target_modules must name non-overlapping blocks (e.g. self_attn, mlp)."
            )
        new_module = BottleneckLayer(
            target,
            adapter_name,
            peft_config,
            hidden_size=self._hidden_size(target),
        )
        if adapter_name not in self.active_adapters:
            # An additional adapter is not trainable until it is activated.
            for name in new_module.adapter_layer_names:
                getattr(new_module, name).requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def _replace_module(
        self, parent: nn.Module, child_name: str, new_module: nn.Module, child: nn.Module
    ) -> None:
        if isinstance(new_module, BottleneckLayer):
            super()._replace_module(parent, child_name, new_module, child)
        else:
            # unload(): put the original block back. BaseTuner's version would try to copy
            # `.weight` onto it, which whole blocks (attention, MLP) do not have.
            setattr(parent, child_name, new_module)

    def _hidden_size(self, target: nn.Module) -> int | None:
        width = infer_output_features(target)
        if width is not None:
            return width
        model_config = self.get_model_config(self.model)
        return model_config.get("hidden_size") or model_config.get("text_config", {}).get(
            "hidden_size"
        )

    def _check_merge_allowed(self) -> None:
        raise BottleneckMergeError()

    def merge_and_unload(self, *args: Any, **kwargs: Any) -> nn.Module:
        """Always raises: a bottleneck adapter has no equivalent weight update."""
        raise BottleneckMergeError()
