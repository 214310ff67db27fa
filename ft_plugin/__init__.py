"""ft-plugin: domain fine-tuning from one YAML recipe, on TRL, PEFT and the Hugging Face Hub."""

__version__ = "0.1.0"
