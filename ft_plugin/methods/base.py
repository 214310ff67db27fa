"""What every fine-tuning method provides (one file or folder per method, one registry).

A method turns a loaded base model into the model that trains: it may ask for a
quantized load, wraps the model in a PEFT adapter or freezes parameters, and says
whether its result can be merged into plain weights. Methods are registered by name in
:mod:`ft_plugin.registry` (builtins) or through the ``ft_plugin.methods`` entry point.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from peft import PeftConfig
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe
    from ft_plugin.models import ResolvedModel


class FineTuningMethod:
    """Base class for fine-tuning methods.

    Subclasses set :attr:`name` and either override :meth:`peft_config` (PEFT methods)
    or :meth:`prepare` (methods that train the model's own weights). The rest of
    ft-plugin asks the method, never its name: is its result an adapter (``uses_peft``),
    can it merge, does its base load quantized (:attr:`takes_quantized_base`), how a
    trained run loads for evaluation and serving (:meth:`load_adapter`) and for EWC's
    Fisher (:meth:`load_trainable_run`), what the model card says (:meth:`card_usage`),
    which builtin recipes train with it (:attr:`recipe_suffix`).
    """

    name: ClassVar[str]
    #: True when the result is a PEFT adapter saved next to, not inside, the base weights.
    uses_peft: ClassVar[bool] = True
    #: True when `ft-plugin merge` can fold the result into plain weights.
    mergeable: ClassVar[bool] = True
    #: Why merging is impossible, shown by `ft-plugin merge` when ``mergeable`` is False.
    not_mergeable_reason: ClassVar[str] = ""
    #: True when llama.cpp applies the adapter as it is (its LoRA GGUF, Ollama's ADAPTER).
    llama_cpp_adapter: ClassVar[bool] = False
    #: Builtin recipes that train with this method are named ``DOMAIN-SUFFIX``
    #: (``medical-lora``); empty: the suffix is the method's name. A method without recipes
    #: of its own starts from the LoRA ones, ``adapter:`` set to it (the Space's Train tab).
    recipe_suffix: ClassVar[str] = ""

    @property
    def takes_quantized_base(self) -> bool:
        """True when the base loads quantized where the recipe asks (`load_in_4bit`,
        `load_in_8bit`): the method overrides :meth:`quantization_config`. Answered
        without importing bitsandbytes.

        Example:
            >>> from ft_plugin import registry
            >>> registry.load_method("qlora").takes_quantized_base
            True
        """
        return type(self).quantization_config is not FineTuningMethod.quantization_config

    @property
    def recipe_name_suffix(self) -> str:
        """The suffix of this method's builtin recipes (:attr:`recipe_suffix` or the name)."""
        return self.recipe_suffix or self.name

    def quantization_config(self, recipe: Recipe, compute_dtype: torch.dtype) -> Any | None:
        """A `BitsAndBytesConfig` when the base must be loaded quantized, else None."""
        return None

    def implied_keys(self, recipe: Recipe) -> dict[str, Any]:
        """Recipe keys this method sets when the recipe leaves them unset (QLoRA: a 4-bit
        base); the schema applies them as it validates the recipe."""
        return {}

    def recipe_problems(self, recipe: Recipe) -> list[tuple[tuple[str, ...], str]]:
        """Keys of ``recipe`` this method cannot train with, as (key path, why) pairs; the
        schema reports them beside every other problem of the recipe.

        Example:
            >>> from ft_plugin import registry
            >>> from ft_plugin.config import Recipe
            >>> recipe = Recipe.model_construct(load_in_4bit=True, load_in_8bit=False,
            ...                                 reinit_weights=False)
            >>> registry.load_method("full").recipe_problems(recipe)[0][0]
            ('load_in_4bit',)
        """
        problems: list[tuple[tuple[str, ...], str]] = []
        quantized = next((k for k in ("load_in_4bit", "load_in_8bit") if getattr(recipe, k)), None)
        if quantized and not self.takes_quantized_base:
            problems.append(((quantized,), f"{quantized} needs a PEFT adapter over the frozen "
                             f"quantized base ({', '.join(_quantizable_methods())}); adapter: "
                             f"{self.name} cannot train quantized weights"))  # fmt: skip
        if getattr(recipe, "reinit_weights", False) and self.uses_peft:
            problems.append((("reinit_weights",), "the random base weights would be lost: "
                             f"adapter {self.name} saves only its own weights; write adapter: "
                             "full (or freeze)"))  # fmt: skip
        return problems

    def register_with_peft(self) -> None:
        """Teach PEFT this method's adapter type before PEFT reads a saved one; PEFT's own
        methods need nothing (a method PEFT lacks, such as bottleneck, overrides this)."""

    def peft_config(self, recipe: Recipe, model: PreTrainedModel) -> PeftConfig:
        """The PEFT configuration for this recipe (PEFT methods only)."""
        raise NotImplementedError(f"{type(self).__name__} must implement peft_config or prepare")

    def prepare(self, model: PreTrainedModel, recipe: Recipe) -> torch.nn.Module:
        """Return the model that trains: by default, ``model`` wrapped in this method's adapter,
        with the embedding rows of the tokens the recipe added trainable where PEFT allows."""
        from peft import get_peft_model

        config = self.peft_config(recipe, model)
        train_new_token_rows(config, model, self.name)
        return with_head_bias(get_peft_model(model, config))

    def start_from(
        self, model: PreTrainedModel, recipe: Recipe, adapter_dir: Path
    ) -> torch.nn.Module:
        """``model`` with an existing adapter loaded trainable (`lora_model_dir`)."""
        from peft import PeftModel

        if not self.uses_peft:
            from ft_plugin.errors import UserError

            raise UserError(
                f"lora_model_dir: adapter {self.name} trains full weights; set base_model to the earlier "
                "run directory instead"
            )
        self.register_with_peft()
        return with_head_bias(PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True))

    def load_adapter(
        self,
        model: torch.nn.Module,
        run_dir: Path,
        *,
        adapter_name: str = "default",
        autocast_adapter_dtype: bool = True,
    ) -> torch.nn.Module:
        """A trained run's adapter on ``model``, for evaluation and serving (frozen).

        ``model`` is the base (the result is a new ``PeftModel``) or a ``PeftModel`` that
        gets the adapter under ``adapter_name`` beside its others (one Space serving
        several runs). ``autocast_adapter_dtype`` is PEFT's: upcast bf16 adapters to fp32.

        Example (usage, not run as a doctest: it needs a model, files or the Hub)::

            model = registry.load_method("lora").load_adapter(base, Path("runs/medical-lora"))
        """
        from peft import PeftModel

        if not self.uses_peft:
            from ft_plugin.errors import UserError

            raise UserError(f"{run_dir}: adapter {self.name} trains full weights, not an adapter")
        self.register_with_peft()
        options = {"adapter_name": adapter_name, "autocast_adapter_dtype": autocast_adapter_dtype}
        if isinstance(model, PeftModel):
            model.load_adapter(str(run_dir), **options)
            return model
        return PeftModel.from_pretrained(model, str(run_dir), **options)

    def load_trainable_run(
        self, run_dir: Path, recipe: Recipe, base: ResolvedModel
    ) -> torch.nn.Module:
        """A trained run's model in fp32 with exactly the parameters it trained trainable:
        what EWC's Fisher is taken over (`ft-plugin ewc fisher`, `ewc.previous`). EWC
        applies to every method: the Fisher covers whatever the run trained.

        An adapter goes trainable onto ``base``, the run's resolved base model
        (``models.resolve_base_model``), as :meth:`start_from` does; a method that trains
        full weights loads the run's own checkpoint and prepares it again.
        """
        import torch

        from ft_plugin import models

        if not self.uses_peft:
            from transformers import AutoModelForCausalLM

            own = AutoModelForCausalLM.from_pretrained(run_dir, dtype=torch.float32)
            return self.prepare(own, recipe)
        model = models.load_model(recipe, base, dtype=torch.float32)
        return self.start_from(model, recipe, run_dir)

    def card_usage(self, repo_id: str, base_id: str | None) -> list[str]:
        """The model card's "Usage" lines (Markdown) for a run published as ``repo_id``
        from the base model ``base_id``: for an adapter PEFT's loader, then transformers'
        own; for full weights transformers alone.

        Example:
            >>> from ft_plugin import registry
            >>> registry.load_method("lora").card_usage("me/run", "org/base")[1]
            'from peft import AutoPeftModelForCausalLM'
        """
        if not self.uses_peft:
            return full_weights_usage(repo_id)
        return [*peft_usage(repo_id),
                "With transformers' own PEFT integration:", "", "```python",
                "from transformers import AutoModelForCausalLM", "",
                f'model = AutoModelForCausalLM.from_pretrained("{base_id}")',
                f'model.load_adapter("{repo_id}")', "```", ""]  # fmt: skip


def peft_usage(repo_id: str) -> list[str]:
    """Model-card lines loading the adapter ``repo_id`` with PEFT's ``AutoPeftModelForCausalLM``."""
    return ["```python", "from peft import AutoPeftModelForCausalLM",
            "from transformers import AutoTokenizer", "",
            f'model = AutoPeftModelForCausalLM.from_pretrained("{repo_id}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")', "```", ""]  # fmt: skip


def full_weights_usage(repo_id: str) -> list[str]:
    """Model-card lines loading the whole model ``repo_id`` (full weights, or an adapter
    merged into its base) with transformers.

    Example:
        >>> full_weights_usage("me/run")[3]
        'model = AutoModelForCausalLM.from_pretrained("me/run")'
    """
    return ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
            f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")', "```", ""]  # fmt: skip


def train_new_token_rows(config: PeftConfig, model: PreTrainedModel, method: str) -> None:
    """Make the embedding rows of the tokens the recipe added train with the adapter.

    A new token's rows start untrained (random, or the mean of the others), so they must
    learn, as Axolotl requires. PEFT's ``trainable_token_indices`` (LoRA and its kin)
    trains just those rows of the input embeddings and, when untied, of the output head,
    and saves only them; other PEFT configs train the two layers whole
    (``modules_to_save``). One line says which.
    """
    from ft_plugin.models import new_token_ids, note

    ids = new_token_ids(model)
    if not ids:
        return
    layers = embedding_layer_names(model)
    kept = set(getattr(config, "modules_to_save", None) or [])
    what = f"{len(ids)} new token{'s' * (len(ids) != 1)} (ids {ids[0]}-{ids[-1]})"
    rows = {name: list(ids) for name in layers if name.rsplit(".", 1)[-1] not in kept}
    if not rows:
        note(f"{what}: {' and '.join(layers)} train whole (lora_modules_to_save)")
    elif hasattr(config, "trainable_token_indices"):
        config.trainable_token_indices = rows
        note(f"{what}: their rows of {' and '.join(layers)} train with the {method} adapter "
             "(PEFT trainable_token_indices)")  # fmt: skip
    elif hasattr(config, "modules_to_save"):
        config.modules_to_save = sorted(kept | {name.rsplit(".", 1)[-1] for name in layers})
        note(f"{what}: {' and '.join(layers)} train whole with the {method} adapter "
             "(PEFT modules_to_save)")  # fmt: skip
    else:
        note(f"{what}: adapter {method} cannot train embedding rows; they keep their "
             "initial values (adapter: lora trains them)")  # fmt: skip


def with_head_bias(model: torch.nn.Module) -> torch.nn.Module:
    """``model``, its PEFT trainable-token wrappers showing their layer's ``bias``.

    TRL's fused LM head reads ``lm_head.weight`` and ``lm_head.bias``; PEFT's
    ``TrainableTokensWrapper`` forwards ``weight`` only (the rows merged in), so a head
    whose new rows train would fail on ``bias``. Set in the instance dict: not a parameter.
    """
    from peft.utils.other import TrainableTokensWrapper

    for module in model.modules():
        if isinstance(module, TrainableTokensWrapper) and "bias" not in module.__dict__:
            module.__dict__["bias"] = getattr(module.token_adapter.base_layer, "bias", None)
    return model


def embedding_layer_names(model: PreTrainedModel) -> list[str]:
    """Module names of the input embeddings and, when not tied to them, the output head."""
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    tied = outputs is None or outputs.weight is inputs.weight
    wanted = [inputs] if tied else [inputs, outputs]
    names = {id(module): name for name, module in model.named_modules()}
    return [names[id(module)] for module in wanted]


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Names (last component) of every Linear layer except the output head.

    This is Axolotl's `lora_target_linear: true`; bitsandbytes' 4- and 8-bit linears count.
    """
    import sys

    import torch

    kinds: tuple[type, ...] = (torch.nn.Linear,)
    bnb = sys.modules.get("bitsandbytes")  # a quantized model has imported it; don't otherwise
    if bnb is not None:
        kinds += (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, kinds) and module is not output
    }
    return sorted(names)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit packed weights count as their true size.

    The one definition: training reports it and the estimate (methods.estimate) uses it.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
        >>> _ = net[0].requires_grad_(False)
        >>> count_parameters(net)
        (8, 23)
    """
    trainable = total = 0
    for parameter in model.parameters():
        count = parameter.numel()
        if hasattr(parameter, "quant_state"):  # bitsandbytes Params4bit packs two values per byte
            count = math.prod(parameter.quant_state.shape)
        total += count
        trainable += count if parameter.requires_grad else 0
    return trainable, total


def _quantizable_methods() -> list[str]:
    """The builtin methods that train over a quantized base (a plugin's are not imported)."""
    from ft_plugin import registry

    return [name for name in registry.BUILTIN_METHODS
            if registry.load_method(name).takes_quantized_base]  # fmt: skip
