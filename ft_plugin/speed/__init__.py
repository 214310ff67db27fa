"""Speed work on the libraries we train with, each measured in benchmarks/ and tested
against the library's own result: per-row attention over packed rows
(``packed_attention``), TRL's fused LM head tuned for CPUs (``trl_lm_head``), and
PEFT's LoRA dropout and casts (``lora_layers``). Nothing here imports ft_plugin: the
model stage, the methods and the engine each switch on the part they own."""
