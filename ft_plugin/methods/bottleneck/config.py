"""Configuration of Houlsby-style bottleneck adapters (``peft_type: BOTTLENECK``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from peft.config import PeftConfig

from .registration import ensure_peft_type

NON_LINEARITIES = ("relu", "gelu", "silu", "tanh")

#: Blocks whose output gets an adapter when ``target_modules`` is not given, for model types
#: whose blocks are not named like Llama's. Houlsby placement: after the attention block and
#: after the feed-forward block of every layer, on the block output, before the residual add.
DEFAULT_TARGET_MODULES: dict[str, list[str]] = {
    "gpt2": ["attn", "mlp"],
    "gpt_neox": ["attention", "mlp"],
}
#: Every other model type: the Llama naming that most decoders share (Llama, Mistral, Qwen2/3,
#: Gemma, Phi-3, OLMo, SmolLM, ...).
FALLBACK_TARGET_MODULES = ["self_attn", "mlp"]


@dataclass
class BottleneckConfig(PeftConfig):
    """Configuration of a :class:`~ft_plugin.methods.bottleneck.BottleneckModel`.

    Each targeted block ``f`` becomes ``h = f(x); h + up(dropout(act(down(h))))``: a small
    two-layer MLP (hidden -> ``bottleneck_size`` -> hidden, both with bias) added to the
    block's output before the residual connection (Houlsby et al., 2019, "Parameter-Efficient
    Transfer Learning for NLP"). Per wrapped block it trains
    ``2 * hidden * bottleneck_size + bottleneck_size + hidden`` parameters.

    Args:
        target_modules: Names of the blocks to wrap. A list matches a module whose full
            name equals an entry or ends with ``"." + entry``; a string is a regex that
            must match the full name. Default (None): the attention block ``self_attn``
            and the MLP block ``mlp`` of every layer for Llama-like models (GPT-2 and
            GPT-NeoX use their own block names, see ``DEFAULT_TARGET_MODULES``).
            Target whole blocks, not their inner linear layers.
        exclude_modules: Names (list) or regex (str) of modules never to wrap.
        bottleneck_size: Width of the bottleneck (the adapter's hidden size).
        non_linearity: Activation between the down and up projection: ``relu``, ``gelu``,
            ``silu`` or ``tanh``.
        adapter_dropout: Dropout probability applied to the bottleneck activations.
        init_scale: Standard deviation of the up projection's initial weights. ``0.0``
            (default) zero-initialises the up projection and its bias, so a fresh adapter is
            an exact identity and the model's outputs are unchanged until training moves
            it; Houlsby et al. used a small near-identity init such as ``1e-2``. The down
            projection always gets ``nn.Linear``'s default (Kaiming-uniform) init.
        layers_to_transform: Only wrap blocks of these layer indices (int or list).
        layers_pattern: Name of the layer list (e.g. ``"layers"``) used with
            ``layers_to_transform``.
        modules_to_save: Modules besides the adapters that are trained and saved in full
            (e.g. ``["lm_head"]``).
    """

    target_modules: list[str] | str | None = field(
        default=None,
        metadata={
            "help": "Blocks whose output gets an adapter (names/suffixes, or a regex). "
            "Default: self_attn and mlp of every layer for Llama-like models."
        },
    )
    exclude_modules: list[str] | str | None = field(
        default=None, metadata={"help": "Modules (names/suffixes, or a regex) never wrapped."}
    )
    bottleneck_size: int = field(default=64, metadata={"help": "Hidden size of each adapter."})
    non_linearity: str = field(
        default="relu",
        metadata={"help": "Activation between down and up projection: relu, gelu, silu, tanh."},
    )
    adapter_dropout: float = field(
        default=0.0, metadata={"help": "Dropout on the bottleneck activations."}
    )
    init_scale: float = field(
        default=0.0,
        metadata={
            "help": "Std of the up projection's initial weights; 0.0 zero-inits it so a fresh "
            "adapter is an exact identity."
        },
    )
    layers_to_transform: list[int] | int | None = field(
        default=None, metadata={"help": "Only adapt the layers with these indices."}
    )
    layers_pattern: list[str] | str | None = field(
        default=None,
        metadata={"help": "Name of the layer list, used together with layers_to_transform."},
    )
    modules_to_save: list[str] | None = field(
        default=None,
        metadata={"help": "Modules besides the adapters to train and save in full (e.g. lm_head)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = ensure_peft_type()
        if isinstance(self.target_modules, list):
            self.target_modules = set(self.target_modules)
        if isinstance(self.exclude_modules, list):
            self.exclude_modules = set(self.exclude_modules)
        if isinstance(self.bottleneck_size, bool) or not isinstance(self.bottleneck_size, int):
            raise TypeError(f"bottleneck_size must be an int, got {self.bottleneck_size!r}")
        if self.bottleneck_size < 1:
            raise ValueError(f"bottleneck_size must be >= 1, got {self.bottleneck_size}")
        if self.non_linearity not in NON_LINEARITIES:
            raise ValueError(
                f"non_linearity must be one of {', '.join(NON_LINEARITIES)}; "
                f"got {self.non_linearity!r}"
            )
        if not 0.0 <= self.adapter_dropout < 1.0:
            raise ValueError(f"adapter_dropout must be in [0, 1), got {self.adapter_dropout}")
        if self.init_scale < 0:
            raise ValueError(f"init_scale must be >= 0, got {self.init_scale}")
        if self.layers_pattern and self.layers_to_transform is None:
            raise ValueError("layers_pattern only makes sense together with layers_to_transform")
