"""What a recipe from elsewhere may set: remote recipes run no code and reach no files.

A recipe file that is not on this machine (any ``hf://`` file: the recipe named on the
command line, an ``extends:`` parent at any depth, a sibling it names) is *remote*: its
author can change it after you read it. Keys that run code, read or write this machine's
files, fetch from an address outside the Hub, or publish must come from a local file
(the recipe on disk, a builtin, ``--set``) or from a remote file the user trusts by commit
(``--trust-recipe hf://OWNER/REPO@COMMIT/PATH``). :data:`RULES` is the one table of such
keys; :func:`check_remote_keys` applies it to a merged recipe using each value's origin,
so a key the local file overrides is fine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ft_plugin.errors import RecipeError, UserError
from ft_plugin.hub import refs

from .schema import Recipe
from .schema.model import BASE_REVISION_NAMES
from .yaml_source import KeyPath, Located, Origin

CODE, READ, WRITE, NETWORK, PUBLISH = "code", "read", "write", "network", "publish"
_LOCAL_PREFIXES = (".", "/", "~")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Found:
    """A value the walk found: its key path, the value, its mapping, and the whole recipe."""

    path: KeyPath
    value: Any
    parent: Mapping[str, Any]
    root: Mapping[str, Any]


def _always(found: Found) -> bool:
    return True


@dataclass(frozen=True)
class Rule:
    """Keys matching ``pattern`` (``*``: any key or list index) that a remote file may not
    set when ``applies`` holds, because ``reason``; ``kind`` groups the rules."""

    pattern: str
    kind: str
    reason: str
    applies: Callable[[Found], bool] = _always


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _is_url(text: str) -> bool:
    """An address that fsspec / datasets would fetch: any scheme but the Hub's, or a chain."""
    return ("://" in text or "::" in text) and not (refs.is_hub_ref(text) and "::" not in text)


def _is_local_path(text: str) -> bool:
    if text.startswith(_LOCAL_PREFIXES):
        return True
    try:
        return Path(text).exists()
    except (OSError, ValueError):  # too long, or a NUL: no file can have that name
        return False


def _is_local_data(path: str) -> bool:
    """A dataset path that ft_plugin.data.reading reads from this machine (a file has a suffix)."""
    if path.startswith("builtin:") or _is_url(path):
        return False
    return _is_local_path(path) or bool(Path(path).suffix)


def _true(found: Found) -> bool:
    # Anything but false: pydantic reads "yes", "on", 1 as true.
    return found.value not in (False, None)


def _runs_remote_code(found: Found) -> bool:
    return found.root.get("trust_remote_code") not in (False, None)


def _local_model(found: Found) -> bool:
    return isinstance(found.value, str) and _is_local_path(found.value)


def _local_folder(found: Found) -> bool:
    # hf:// downloads safetensors, json and tokenizer files only (refs.resolve_folder)
    return isinstance(found.value, str) and not refs.is_hub_ref(found.value)


def _local_data_path(found: Found) -> bool:
    return isinstance(found.value, str) and _is_local_data(found.value)


def _any_url(found: Found) -> bool:
    return any(_is_url(text) for text in _strings(found.value))


def _local_data_files(found: Found) -> bool:
    """``data_files`` resolve inside a Hub dataset repo only when ``path`` is a Hub id
    (OWNER/NAME); beside a builder name (json, csv, …) or a folder they are local files."""
    path = found.parent.get("path")
    hub_repo = isinstance(path, str) and path.count("/") == 1 and not _is_local_data(path)
    return any(
        not hub_repo or text.startswith(_LOCAL_PREFIXES) or ".." in text.split("/")
        for text in _strings(found.value)
        if not _is_url(text)
    )


def _template_file(found: Found) -> bool:
    kind = found.value
    return isinstance(kind, str) and kind.endswith((".yaml", ".yml")) and not refs.is_hub_ref(kind)


def _not_a_plain_name(found: Found) -> bool:
    return not (isinstance(found.value, str) and _PLAIN_NAME.fullmatch(found.value))


def _template_text_file(found: Found) -> bool:
    """A chat_template_jinja naming a file (not Jinja text): Axolotl reads the file, whose
    contents would become the template saved with the run (and published)."""
    value = found.value
    return isinstance(value, str) and not any(mark in value for mark in ("{{", "{%"))


def _deepspeed_not_builtin(found: Found) -> bool:
    """Anything but an Axolotl builtin DeepSpeed name (``deepspeed_configs/zero3_bf16.json``):
    a path reads a file here, and an inline mapping can name NVMe offload folders to write."""
    value = found.value
    builtin = isinstance(value, str) and re.fullmatch(r"(deepspeed_configs/)?\w+(\.json)?", value)
    return value not in (False, None, {}) and not builtin


def _uploads(found: Found) -> bool:
    return found.value not in (False, None, "false")


def _data_rules(entries: str) -> list[Rule]:
    return [
        Rule(f"{entries}.path", READ, "reads data from this machine", _local_data_path),
        Rule(f"{entries}.chat_template_jinja", READ, "reads a template file on this machine",
             _template_text_file),
        Rule(f"{entries}.path", NETWORK, "fetches data from an address outside the Hub", _any_url),
        Rule(f"{entries}.data_files", READ, "reads files on this machine", _local_data_files),
        Rule(f"{entries}.data_files", NETWORK, "fetches files from an address outside the Hub",
             _any_url),
        Rule(f"{entries}.type", READ, "reads a template file on this machine", _template_file),
    ]  # fmt: skip


_DATA_LISTS = ("datasets", "test_datasets", "replay.datasets", "pretraining_dataset")
_SCOPES = ("", "stages.*.", "adapters.*.")  # stages and task adapters override data and ewc

RULES: tuple[Rule, ...] = (
    Rule("trust_remote_code", CODE, "runs a model repo's Python code on this machine", _true),
    Rule("base_model", CODE, "chooses whose Python code trust_remote_code: true runs",
         _runs_remote_code),
    *(Rule(name, CODE, "chooses whose Python code trust_remote_code: true runs",
           _runs_remote_code) for name in BASE_REVISION_NAMES),  # Axolotl's spellings too
    Rule("tokenizer_config", CODE, "chooses whose Python code trust_remote_code: true runs",
         _runs_remote_code),
    Rule("base_model", READ, "loads a model folder from this machine", _local_model),
    Rule("tokenizer_config", READ, "loads a tokenizer folder from this machine", _local_model),
    Rule("lora_model_dir", READ, "loads a folder from this machine", _local_folder),
    *(Rule(f"{scope}ewc.previous", READ, "loads a folder from this machine", _local_folder)
      for scope in _SCOPES),
    *(rule for scope in _SCOPES for entries in _DATA_LISTS
      for rule in _data_rules(f"{scope}{entries}.*")),
    Rule("output_dir", WRITE, "chooses where on this machine the run is written"),
    Rule("dataset_prepared_path", WRITE,
         "chooses where on this machine prepared data is written and read back"),
    Rule("chat_template_jinja", READ, "reads a template file on this machine", _template_text_file),
    Rule("name", WRITE, "names the run folder (output_dir's {recipe}) and is not a plain name",
         _not_a_plain_name),
    Rule("resume_from_checkpoint", READ, "loads a checkpoint folder from this machine", _true),
    Rule("deepspeed", READ, "reads a DeepSpeed file (or sets offload folders) on this machine",
         _deepspeed_not_builtin),
    Rule("use_wandb", NETWORK, "sends the run's metrics and settings to Weights & Biases", _true),
    Rule("wandb_project", NETWORK, "sends the run's metrics and settings to Weights & Biases",
         _true),
    Rule("wandb_entity", NETWORK, "chooses which Weights & Biases team receives the run", _true),
    Rule("wandb_log_model", PUBLISH, "uploads the model to Weights & Biases", _uploads),
    Rule("hub_model_id", PUBLISH, "publishes the run with your Hub token when training ends"),
    Rule("hub.private", PUBLISH, "chooses who can see what is published"),
    Rule("hub.revision", PUBLISH, "chooses the branch the run is published to"),
    Rule("hub.create_pr", PUBLISH, "chooses how the run is published"),
)  # fmt: skip
KINDS = (CODE, READ, WRITE, NETWORK, PUBLISH)


def _walk(node: Any, pattern: list[str], path: KeyPath, parent: Any, root: Any) -> Iterator[Found]:
    if not pattern:
        yield Found(path, node, parent if isinstance(parent, dict) else {}, root)
        return
    head, rest = pattern[0], pattern[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
        for key in keys:
            yield from _walk(node[key], rest, (*path, key), node, root)
    elif isinstance(node, list):
        indexes = range(len(node)) if head == "*" else [int(head)] if head.isdigit() else []
        for index in indexes:
            if index < len(node):
                yield from _walk(node[index], rest, (*path, index), node, root)


def remote_problems(
    doc: Located,
    *,
    is_remote: Callable[[Origin], bool] = lambda origin: origin.remote,
    kinds: Collection[str] = KINDS,
) -> Iterator[tuple[Found, Origin, Rule]]:
    """Every value that :data:`RULES` (of ``kinds``) forbids and a remote origin set.

    Example:
        >>> from ft_plugin.config.yaml_source import parse_yaml
        >>> doc = parse_yaml("trust_remote_code: true\\n", "hf://o/r/a.yaml", remote=True)
        >>> [(".".join(map(str, f.path)), o.line) for f, o, _ in remote_problems(doc)]
        [('trust_remote_code', 1)]
    """
    for rule in RULES:
        if rule.kind not in kinds:
            continue
        for found in _walk(doc.data, rule.pattern.split("."), (), doc.data, doc.data):
            origin = doc.origin_of(found.path)
            if origin is not None and is_remote(origin) and rule.applies(found):
                yield found, origin, rule


def check_remote_keys(doc: Located, pinned: Mapping[str, str] | None = None) -> None:
    """Refuse a key of :data:`RULES` that a remote file set, in one line naming the file,
    line, key, why, and what to write instead. ``pinned`` maps a remote file as shown to
    its reference at the commit that was read (for the ``--trust-recipe`` advice)."""
    for found, origin, rule in remote_problems(doc):
        key = ".".join(map(str, found.path))
        trusted = (pinned or {}).get(origin.file) or _with_commit_placeholder(origin.file)
        raise RecipeError(
            f"{key}: {rule.reason}; a recipe from the Hub may not set it: set it in your local "
            f"recipe, or pass --trust-recipe {trusted}",
            file=origin.file,
            line=origin.line,
        )


def _with_commit_placeholder(shown: str) -> str:
    try:
        return str(refs.parse_hub_ref(shown).at("COMMIT"))
    except UserError:
        return "hf://OWNER/REPO@COMMIT/PATH"


def parse_trusted(references: Collection[str]) -> list[refs.HubRef]:
    """The ``--trust-recipe`` references, each an ``hf://`` file pinned to a commit.

    Example:
        >>> parse_trusted(["hf://team/recipes@" + "0" * 40 + "/base.yaml"])[0].path
        'base.yaml'
    """
    parsed = []
    for reference in references:
        if not refs.is_hub_ref(reference):
            raise UserError(
                f"--trust-recipe {reference}: expected a Hub file, hf://OWNER/REPO@COMMIT/PATH "
                "(a local recipe needs no trust)"
            )
        ref = refs.parse_hub_ref(reference)
        if not ref.pinned:
            raise UserError(
                f"--trust-recipe {reference}: pin it to a full commit id, "
                f"{ref.at('COMMIT')} (a branch or tag can change after you read it)"
            )
        parsed.append(ref)
    return parsed


def remote_code_notice(recipe: Recipe, doc: Located) -> str | None:
    """The line that says whose code ``trust_remote_code: true`` runs, or None when false.

    Example:
        >>> from ft_plugin.config.yaml_source import parse_yaml
        >>> doc = parse_yaml("trust_remote_code: true\\nbase_model: team/m\\n", "r.yaml")
        >>> recipe = Recipe.model_validate({**doc.data, "datasets": [{"path": "x"}]})
        >>> remote_code_notice(recipe, doc)
        'trust_remote_code: true (r.yaml line 1) runs the Python code of team/m (revision main, not a pinned commit) on this machine'
    """
    if not recipe.trust_remote_code:
        return None
    origin = doc.origin_of(("trust_remote_code",))
    where = ""
    if origin is not None:
        where = f" ({origin.file} line {origin.line})" if origin.line else f" ({origin.file})"
    # models.load_tokenizer reads tokenizer_config at the base model's revision
    sources = [_code_source(recipe.base_model, recipe.base_model_revision)]
    if recipe.tokenizer_config and recipe.tokenizer_config != recipe.base_model:
        tokenizer = _code_source(recipe.tokenizer_config, recipe.base_model_revision)
        sources.append(f"the tokenizer {tokenizer}")
    return (
        f"trust_remote_code: true{where} runs the Python code of {' and '.join(sources)} "
        "on this machine"
    )


def _code_source(model: str, revision: str | None) -> str:
    if model.startswith("embedded:"):
        return model
    if _is_local_path(model):
        try:
            return f"the folder {Path(model).expanduser().resolve()}"
        except RuntimeError:  # ~user that does not exist: show it as written
            return f"the folder {model}"
    if refs.is_commit(revision):
        return f"{model} (commit {revision})"
    return f"{model} (revision {revision or 'main'}, not a pinned commit)"
