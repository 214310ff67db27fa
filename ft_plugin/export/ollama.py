"""The ``ollama`` export: a Modelfile next to the GGUF.

Ollama templates are Go templates, not Jinja, so the run's chat template is translated by
rendering it: the text around a system prompt, a question and an answer becomes the
``TEMPLATE``'s fixed parts. For one question, with or without a system prompt, Ollama
then writes exactly the prompt the run was trained on (checked in the tests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_SYSTEM, _PROMPT, _ANSWER = "FTPLUGINSYSTEM", "FTPLUGINPROMPT", "FTPLUGINANSWER"


@dataclass(frozen=True)
class ChatParts:
    """A chat template's fixed text for one turn: ``system_prefix`` + system +
    ``after_system`` + question, or ``no_system`` + question; then ``after_prompt`` (the
    assistant's header) + answer + ``after_answer``."""

    system_prefix: str
    after_system: str
    no_system: str
    after_prompt: str
    after_answer: str

    def render(self, prompt: str, system: str = "", answer: str | None = None) -> str:
        """The text the chat template writes for one question (and its answer).

        Example:
            >>> ChatParts("<s>", "\\n", "", "\\nA: ", "</s>").render("Q?", "Be brief.")
            '<s>Be brief.\\nQ?\\nA: '
        """
        head = f"{self.system_prefix}{system}{self.after_system}" if system else self.no_system
        tail = "" if answer is None else f"{answer}{self.after_answer}"
        return f"{head}{prompt}{self.after_prompt}{tail}"


def chat_parts(tokenizer: Any) -> ChatParts:
    """Cut the tokenizer's chat template into :class:`ChatParts` by rendering it."""

    def render(messages: list[dict[str, str]], generation: bool) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=generation)  # fmt: skip

    system, user = {"role": "system", "content": _SYSTEM}, {"role": "user", "content": _PROMPT}
    with_system = render([system, user], True)
    alone = render([user], True)
    answered = render([system, user, {"role": "assistant", "content": _ANSWER}], False)
    before_system, rest = with_system.split(_SYSTEM, 1)
    after_system, after_prompt = rest.split(_PROMPT, 1)
    return ChatParts(before_system, after_system, alone.split(_PROMPT, 1)[0], after_prompt,
                     answered.split(_ANSWER, 1)[1])  # fmt: skip


def go_template(parts: ChatParts) -> str:
    """The Ollama ``TEMPLATE`` for ``parts`` (``.System``, ``.Prompt``, ``.Response``)."""
    return (f"{{{{ if .System }}}}{parts.system_prefix}{{{{ .System }}}}{parts.after_system}"
            f"{{{{ else }}}}{parts.no_system}{{{{ end }}}}{{{{ .Prompt }}}}{parts.after_prompt}"
            f"{{{{ .Response }}}}{parts.after_answer}")  # fmt: skip


def modelfile(gguf_name: str, parts: ChatParts, stops: list[str], system: str | None,
              adapter_name: str | None = None) -> str:  # fmt: skip
    """The Modelfile text: ``FROM`` the GGUF (``ADAPTER`` when the adapter travels
    alone), the ``TEMPLATE``, a ``PARAMETER stop`` per end-of-turn token and the
    ``SYSTEM`` prompt.

    Example:
        >>> print(modelfile("model.gguf", ChatParts("", "\\n", "", "\\n", "<|end|>"), ["<|end|>"], None))
        FROM ./model.gguf
        TEMPLATE \"\"\"{{ if .System }}{{ .System }}
        {{ else }}{{ end }}{{ .Prompt }}
        {{ .Response }}<|end|>\"\"\"
        PARAMETER stop "<|end|>"
        <BLANKLINE>
    """
    lines = [f"FROM ./{gguf_name}"]
    if adapter_name:
        lines.append(f"ADAPTER ./{adapter_name}")
    lines.append(f'TEMPLATE """{go_template(parts)}"""')
    lines += [f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}" for stop in stops]
    if system:
        lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"
