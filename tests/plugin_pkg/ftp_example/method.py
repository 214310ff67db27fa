from ft_plugin.methods.lora import LoraMethod


class ExampleLoraMethod(LoraMethod):
    """LoRA under another name: shows that a plugin can register a method."""

    name = "example-lora"
