"""Chat rows made into training text the way Axolotl's ``chat_template`` type makes them.

- **Templates** by Axolotl's names: ``template_choice.py``.
- **Rows**: ``field_messages``, ``message_property_mappings`` (the old
  ``message_field_role`` / ``_content`` are folded into it by the schema), ``roles``,
  ``field_system`` and ``drop_system_message``. :func:`chat_turns`.
- **Loss**: every turn of a role in ``roles_to_train`` carries loss over its content, and
  the end-of-sequence / end-of-turn token right after a turn as ``train_on_eos`` /
  ``train_on_eot`` say (``turn``: after trained turns, ``all``, ``last``, ``none``).
  :func:`render_turns` renders the conversation once, finds each turn's content in the
  text by rendering it again with the content replaced by a placeholder (twice, with
  placeholders whose edges differ) and diffing, and maps that span onto tokens through
  the tokenizer's offsets: Axolotl's method. TRL's ``assistant_only_loss`` cannot do this
  (it needs ``{% generation %}`` marks in the template and knows the assistant role only),
  so these rows reach ``SFTTrainer`` already tokenized: ``input_ids`` and a
  ``completion_mask``, from which it builds the labels (``completion_only_loss``).
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field
from os.path import commonprefix
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import DataError

from .template_choice import resolve_chat_template

if TYPE_CHECKING:
    from ft_plugin.config.schema import DatasetSection

DEFAULT_ROLES = {"human": "user", "user": "user", "assistant": "assistant", "gpt": "assistant",
                 "bot": "assistant", "system": "system", "tool": "tool"}  # fmt: skip
KNOWN_ROLES = ("system", "user", "assistant", "tool")
_PLACEHOLDERS = ("[[dummy_message]]", "zzdummymessagezz")  # Axolotl's: first/last chars differ
_EOS_REACH = 3  # an end token within this many tokens after a turn's content ends it (Axolotl)
TEMPLATE_FAILED = "chat_template_failed"  # dropped-rows reason: the template raised on the row


# ── rows → turns ────────────────────────────────────────────────────────────────────────


def _content_text(content: Any) -> str | None:
    """A message's content as text: a string, or a list of text parts joined (Axolotl)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        return "".join(str(p.get("text") or p.get("content") or p.get("value") or "")
                       for p in content)  # fmt: skip
    return None


def role_table(spec: DatasetSection) -> dict[str, str]:
    """Source role name → template role name, from ``roles: {TARGET: [SOURCE, …]}``.

    Example:
        >>> from ft_plugin.config.schema import DatasetSection
        >>> spec = DatasetSection(path="x", type="chat_template", roles={"user": ["q"], "assistant": ["a"]})
        >>> role_table(spec)
        {'q': 'user', 'a': 'assistant'}
    """
    if spec.roles:
        return {source: target for target, sources in spec.roles.items() for source in sources}
    return DEFAULT_ROLES


def message_mapping(spec: DatasetSection) -> dict[str, str]:
    """Template message key → the row's message key: role, content, the reasoning trace
    (`template_thinking_key` ← `field_thinking`, both `reasoning_content` by default, as in
    Axolotl's chat_template prompter) and `message_property_mappings`.

    Example:
        >>> from ft_plugin.config.schema import DatasetSection
        >>> message_mapping(DatasetSection(path="x", type="chat_template",
        ...                                field_thinking="thinking"))
        {'role': 'role', 'content': 'content', 'reasoning_content': 'thinking'}
    """
    template_key, message_key = spec.thinking_mapping()
    mapping = {"role": "role", "content": "content", template_key: message_key}
    return {**mapping, **(spec.message_property_mappings or {})}


def _messages(row: dict[str, Any], column: str) -> list[Any] | None:
    messages = row.get(column)
    if isinstance(messages, str):  # a JSON-encoded list, as Axolotl accepts
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            return None
    return messages if isinstance(messages, list) and messages else None


def chat_turns(row: dict[str, Any], spec: DatasetSection) -> list[dict[str, Any]] | str:
    """A row's conversation as template messages (``role``, ``content`` and any other
    mapped property), or the reason the row cannot be used.

    Example:
        >>> from ft_plugin.config.schema import DatasetSection
        >>> spec = DatasetSection(path="x", type="chat_template", field_messages="conversations",
        ...                       message_field_role="from", message_field_content="value")
        >>> chat_turns({"conversations": [{"from": "human", "value": "Hi"},
        ...                               {"from": "gpt", "value": "Hello"}]}, spec)
        [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'}]
    """
    messages = _messages(row, spec.field_messages or "messages")
    if messages is None:
        return "missing_messages"
    mapping = message_mapping(spec)
    thinking = spec.thinking_mapping()[0]
    roles = role_table(spec)
    turns: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            return "malformed_message"
        turn = {key: message[source] for key, source in mapping.items()
                if message.get(source) is not None}  # fmt: skip
        role, content = turn.get("role"), _content_text(turn.get("content"))
        if not isinstance(role, str) or content is None:
            return "malformed_message"
        role = roles.get(role, role)
        if role not in KNOWN_ROLES:  # map it with roles: {user: [NAME]} (or assistant, …)
            return "unknown_role"
        if thinking in turn and (trace := _content_text(turn[thinking])) is not None:
            turn[thinking] = trace  # a list of text parts joined, as Axolotl does
        turns.append({**turn, "role": role, "content": content})
    system = row.get(spec.field_system or "system")
    if turns[0]["role"] != "system" and isinstance(system, str) and system.strip():
        turns.insert(0, {"role": "system", "content": system})
    if spec.drop_system_message and turns[0]["role"] == "system":
        turns = turns[1:]
    return turns


# ── turns → tokens with a loss mask ─────────────────────────────────────────────────────


@dataclass(frozen=True)
class TurnLoss:
    """Which tokens of a conversation carry loss (a dataset's `roles_to_train`,
    `train_on_eos`, `train_on_eot`) and the tokens that end a turn."""

    roles: frozenset[str]
    eos: str = "turn"
    eot: str = "turn"
    eos_ids: frozenset[int] = frozenset()
    eot_ids: frozenset[int] = frozenset()


def _diff_span(full: str, dummy: str) -> tuple[int, int]:
    """The characters of ``full`` that differ from ``dummy`` (prefix and suffix trimmed)."""
    start = len(commonprefix([full, dummy]))
    limit = min(len(full), len(dummy)) - start
    suffix = len(commonprefix([full[::-1], dummy[::-1]]))
    return start, len(full) - min(suffix, limit)


@dataclass
class _Rendered:
    text: str
    ids: list[int]
    starts: list[int]
    ends: list[int]


def _render(tokenizer: Any, turns: list[dict[str, Any]], template: str,
            variables: dict[str, Any] | None) -> str:  # fmt: skip
    """The conversation as text; ``variables``: the recipe's `chat_template_kwargs`."""
    return tokenizer.apply_chat_template(turns, tokenize=False, chat_template=template,
                                         **(variables or {}))  # fmt: skip


def _tokenized(tokenizer: Any, text: str) -> _Rendered:
    # What apply_chat_template(tokenize=True) does: the rendered text, no special tokens added.
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        raise DataError(
            "type: chat_template needs a fast tokenizer (one with offset mappings)"
        ) from None
    offsets = encoded["offset_mapping"]
    return _Rendered(text, list(encoded["input_ids"]), [s for s, _ in offsets],
                     [e for _, e in offsets])  # fmt: skip


def _turn_tokens(tokenizer: Any, turns: list[dict[str, Any]], index: int, template: str,
                 rendered: _Rendered,
                 variables: dict[str, Any] | None) -> tuple[int, int] | None:  # fmt: skip
    """Token span ``[start, end)`` of turn ``index``'s content (with its reasoning trace,
    which the placeholder turn lacks, as in Axolotl), None when it has none."""
    spans = []
    for placeholder in _PLACEHOLDERS:
        dummy = {"role": turns[index]["role"], "content": placeholder}
        text = _render(tokenizer, [*turns[:index], dummy, *turns[index + 1 :]], template,
                       variables)  # fmt: skip
        spans.append(_diff_span(rendered.text, text))
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    if last <= first:
        return None
    start, end = bisect_right(rendered.ends, first), bisect_left(rendered.starts, last)
    return (start, end) if start < end else None


def _end_token(ids: list[int], after: int, wanted: frozenset[int]) -> int:
    return next((i for i in range(after, min(len(ids), after + _EOS_REACH + 1))
                 if ids[i] in wanted), -1)  # fmt: skip


def render_turns(tokenizer: Any, turns: list[dict[str, Any]], template: str, loss: TurnLoss,
                 variables: dict[str, Any] | None = None,
                 ) -> tuple[list[int], list[int]]:  # fmt: skip
    """``(input_ids, loss_mask)`` of a conversation: the trained roles' content and the end
    tokens ``loss`` names carry loss (1), everything else does not (0). ``variables``: extra
    template variables (`chat_template_kwargs`)."""
    rendered = _tokenized(tokenizer, _render(tokenizer, turns, template, variables))
    ids = rendered.ids
    mask = [0] * len(ids)
    last = {"eot": -1, "eos": -1}
    for index, turn in enumerate(turns):
        trained = turn["role"] in loss.roles
        if not trained and "all" not in (loss.eos, loss.eot):
            continue
        span = _turn_tokens(tokenizer, turns, index, template, rendered, variables)
        if span is None:
            continue
        if trained:
            mask[span[0] : span[1]] = [1] * (span[1] - span[0])
        for kind, wanted, option in (
            ("eot", loss.eot_ids, loss.eot),
            ("eos", loss.eos_ids, loss.eos),
        ):
            end = _end_token(ids, span[1], wanted)
            if end == -1:
                continue
            last[kind] = end
            if option == "all" or (option == "turn" and trained):
                mask[end] = 1
    for kind, option in (("eot", loss.eot), ("eos", loss.eos)):
        if option == "last" and last[kind] != -1:
            mask[last[kind]] = 1
    return ids, mask


def _single_token(tokenizer: Any, token: str) -> int:
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise DataError(
            f"eot_tokens: {token!r} is {len(ids)} tokens for this tokenizer, not one; add it "
            "under tokens: (or special_tokens:) first"
        )
    return ids[0]


def turn_loss(spec: DatasetSection, tokenizer: Any, eot_tokens: list[str] | None) -> TurnLoss:
    """A dataset's loss rules, with the token ids that end a turn (``eot_tokens``, default
    the tokenizer's EOS token)."""
    roles = role_table(spec)
    eos_id = tokenizer.eos_token_id
    eos_ids = frozenset([eos_id]) if eos_id is not None else frozenset()
    eot_ids = frozenset(_single_token(tokenizer, t) for t in eot_tokens) if eot_tokens else eos_ids
    eos = spec.train_on_eos or "turn"  # Axolotl's defaults
    eot = spec.train_on_eot or eos
    if eos_ids and eos_ids <= eot_ids and eot != eos:
        raise DataError(
            f"{spec.path}: train_on_eot: {eot} contradicts train_on_eos: {eos}: the EOS token "
            "is one of the end-of-turn tokens; make them equal"
        )
    names = spec.roles_to_train if spec.roles_to_train is not None else ["assistant"]
    trained = frozenset(roles.get(role, role) for role in names)
    return TurnLoss(trained, eos, eot, eos_ids, eot_ids)


@dataclass
class ChatRendering:
    """What rendering ``chat_template`` rows needs beyond a dataset's keys: the model's
    tokenizer, the recipe's `chat_template` / `chat_template_jinja`, `eot_tokens`,
    `chat_template_kwargs`."""

    tokenizer: Any
    chat_template: str | None = None
    chat_template_jinja: str | None = None
    eot_tokens: list[str] | None = None
    template_kwargs: dict[str, Any] | None = None
    failure: str = ""  # the last template error, for the message when every row fails
    notes: list[str] = field(default_factory=list)  # one line each, for the run to print
    _templates: dict[tuple[str | None, str | None], str] = field(default_factory=dict)

    def template_for(self, spec: DatasetSection) -> str:
        """The dataset's own template if it names one, else the recipe's (Axolotl's rule)."""
        if spec.chat_template or spec.chat_template_jinja:
            key = (spec.chat_template, spec.chat_template_jinja)
        else:
            key = (self.chat_template, self.chat_template_jinja)
        if key not in self._templates:
            self._templates[key] = resolve_chat_template(*key, self.tokenizer)
        return self._templates[key]

    def tokenize(
        self, examples: list[dict[str, Any]], spec: DatasetSection
    ) -> tuple[list[dict[str, Any]], Counter[str]]:
        """Each prompt/completion example of a ``chat_template`` dataset with its
        ``input_ids`` and ``completion_mask`` added; rows left with no loss are dropped."""
        template, loss = self.template_for(spec), turn_loss(spec, self.tokenizer, self.eot_tokens)
        self._check_turn_end(spec, template, loss)
        kept, dropped = [], Counter[str]()
        for example in examples:
            tokenized = self.tokenize_one(example, template, loss)
            if isinstance(tokenized, str):
                dropped[tokenized] += 1
            else:
                kept.append(tokenized)
        if not kept and dropped.get(TEMPLATE_FAILED) == len(examples):
            raise DataError(f"{spec.path}: the chat template fails on every row: {self.failure}")
        return kept, dropped

    def _check_turn_end(self, spec: DatasetSection, template: str, loss: TurnLoss) -> None:
        """Axolotl's warning: an EOS token the template never writes ends no turn."""
        eos = getattr(self.tokenizer, "eos_token", None)
        if self.eot_tokens or loss.eos == "none" or not eos:
            return
        if eos not in template and "eos_token" not in template:
            note = (f"{spec.path}: the tokenizer's EOS token {eos!r} does not occur in the chat "
                    "template, so no turn ends with a token that carries loss (the model is not "
                    "taught to stop); set eot_tokens: to the template's end-of-turn token")  # fmt: skip
            if note not in self.notes:
                self.notes.append(note)

    def tokenize_one(self, example: dict[str, Any], template: str,
                     loss: TurnLoss) -> dict[str, Any] | str:  # fmt: skip
        """One example tokenized, or the reason it is dropped."""
        from jinja2 import TemplateError

        turns = [*example["prompt"], *example["completion"]]
        try:
            ids, mask = render_turns(self.tokenizer, turns, template, loss, self.template_kwargs)
        except (TemplateError, ValueError, TypeError) as exc:  # e.g. roles it refuses
            self.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            return TEMPLATE_FAILED
        if not any(mask):
            return "no_trained_tokens"
        return {**example, "input_ids": ids, "completion_mask": mask}
