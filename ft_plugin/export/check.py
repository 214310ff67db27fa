"""An export is checked by loading it back, before the command reports success.

The tuned model (the run, as ``ft-plugin eval`` loads it) answers a few of the run's own
held-out prompts greedily and scores their reference answers; the export does the same
through its own loader: plain `transformers` for ``merged``, llama.cpp itself for GGUF.
What must hold, per export type, is in :data:`TOLERANCES`; a difference is reported by
what differs: the chat template, the stop tokens, the tokenizer or the weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ft_plugin.errors import UserError

from .stops import end_of_turn_tokens

# Greedy decoding picks the top logit; where the run's top two are this close (in logits),
# float rounding in another runtime may pick either, so answers are compared up to there.
NEAR_TIE = 0.05
# Largest relative change in held-out perplexity, and whether every greedy answer must be
# the same, per export type. Set from measurements on the embedded model (BENCHMARKS.md,
# Deployment): merging and 16-bit GGUF change perplexity by far less than these bounds,
# 8- and 4-bit quantization by more, so their answers may drift and are reported only.
TOLERANCES: dict[str, tuple[float, bool]] = {
    "merged": (0.001, True), "f32": (0.001, True), "f16": (0.005, True),
    "bf16": (0.02, False), "q8_0": (0.02, False), "q4_k_m": (0.15, False),
}  # fmt: skip


class ExportMismatch(UserError):
    """The exported model does not answer as the run does; the message says what differs."""


@dataclass
class Reference:
    """The tuned model on the check rows: greedy answers to the first ``len(answers)``
    prompts, and every row's answer NLL and rendered prompt."""

    prompts: list[list[dict[str, str]]]
    texts: list[str]  # each prompt as the chat template renders it, to be tokenized
    ids: list[list[int]]  # each row rendered as training renders it
    scored: list[list[int]]  # 1 where a token is part of the answer
    answers: list[str]
    nll: list[tuple[float, int]]
    # Each answer up to the run's first near-tie (see NEAR_TIE): the part any faithful
    # export must write too; the whole answer where there is none.
    settled: list[str] = field(default_factory=list)

    @property
    def perplexity(self) -> float:
        return _perplexity(self.nll)

    def agrees(self, index: int, answer: str) -> bool:
        """Whether ``answer`` is the run's answer ``index``, or starts with its settled
        part when the run's own choice came down to a near-tie."""
        if answer == self.answers[index] or self.settled[index] == self.answers[index]:
            return answer == self.answers[index]
        return answer.startswith(self.settled[index])


@dataclass
class Observed:
    """The export on the same rows; ``token_differences``: prompt index → where the
    export's tokenizer splits the rendered prompt otherwise than the run's."""

    answers: list[str]
    nll: list[tuple[float, int]]
    token_differences: dict[int, str] = field(default_factory=dict)


@dataclass
class CheckResult:
    """One export compared with the run."""

    kind: str
    answered: int
    same_answers: int  # identical to the run's
    agreeing: int  # identical, or as the run's up to its first near-tie
    perplexity_run: float
    perplexity_export: float
    tolerance: float
    rows: int = 0  # rows scored and tokenized
    prompts_tokenized_otherwise: int = 0
    first_token_difference: str | None = None
    differing: list[dict[str, str]] = field(default_factory=list)

    @property
    def perplexity_change(self) -> float:
        return self.perplexity_export / self.perplexity_run - 1

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "perplexity_change": round(self.perplexity_change, 6)}

    def summary(self) -> str:
        ties = self.agreeing - self.same_answers
        near = f" ({ties} up to the run's first near-tie)" if ties else ""
        line = (f"{self.agreeing}/{self.answered} greedy answers as the run's{near}; held-out "
                f"perplexity {self.perplexity_export:.4f} vs {self.perplexity_run:.4f} "
                f"({self.perplexity_change:+.2%}, tolerance ±{self.tolerance:.1%}, {self.rows} rows)")  # fmt: skip
        if self.prompts_tokenized_otherwise:
            line += (f"; the tokenizer splits {self.prompts_tokenized_otherwise} of {self.rows} "
                     f"prompts otherwise (first: {self.first_token_difference})")  # fmt: skip
        return line


def reference(model: Any, tokenizer: Any, examples: list[dict[str, Any]], *, sequence_len: int,
              answers: int, max_new_tokens: int) -> Reference:  # fmt: skip
    """The tuned model on ``examples`` (prompt / completion rows): greedy answers to the
    first ``answers`` prompts, answer NLL of every row."""
    from ft_plugin.data.preview import render_example
    from ft_plugin.evaluate.perplexity import corpus_perplexity

    rendered = [render_example(tokenizer, e, sequence_len) for e in examples]
    prompts = [e["prompt"] for e in examples]
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
             for p in prompts]  # fmt: skip
    greedy = [_greedy_settled(model, tokenizer, p, max_new_tokens) for p in prompts[:answers]]
    scores = corpus_perplexity(model, tokenizer, examples, sequence_len=sequence_len).rows
    return Reference(prompts, texts, [r.input_ids for r in rendered],
                     [r.loss_mask for r in rendered], [g[0] for g in greedy], scores,
                     [g[1] for g in greedy])  # fmt: skip


def _greedy_settled(model: Any, tokenizer: Any, prompt: list[dict[str, str]],
                    max_new_tokens: int) -> tuple[str, str]:  # fmt: skip
    """The run's greedy answer, and its part before the first near-tie."""
    import torch

    inputs = tokenizer.apply_chat_template(prompt, add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)  # fmt: skip
    with torch.inference_mode():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens,
                             eos_token_id=tokenizer.convert_tokens_to_ids(end_of_turn_tokens(tokenizer)),
                             pad_token_id=tokenizer.pad_token_id,
                             output_scores=True, return_dict_in_generate=True)  # fmt: skip
    new = out.sequences[0, inputs["input_ids"].shape[1] :]
    margins = [float(step[0].topk(2).values.diff().abs()) for step in out.scores]
    cut = next((i for i, margin in enumerate(margins) if margin < NEAR_TIE), len(new))
    text = tokenizer.decode(new, skip_special_tokens=True).strip()
    # a cut inside a character's bytes decodes to U+FFFD: the settled text stops before it
    settled = tokenizer.decode(new[:cut], skip_special_tokens=True).strip().rstrip("\ufffd")
    return text, settled


def compare(kind: str, run: Reference, seen: Observed, *,
            allow_tokenizer_difference: bool = False) -> CheckResult:  # fmt: skip
    """``seen`` against ``run``; raises :class:`ExportMismatch` naming the tokenizer when
    the export splits prompts otherwise (unless allowed), and the weights when perplexity
    moves past the tolerance or, for exact exports, an answer differs on a prompt both
    tokenize alike."""
    tolerance, exact = TOLERANCES[kind]
    differing = [{"index": i, "prompt": run.prompts[i][-1]["content"], "run": a, "export": b}
                 for i, (a, b) in enumerate(zip(run.answers, seen.answers, strict=True)) if a != b]  # fmt: skip
    untokenized = [i for i, b in enumerate(seen.answers)
                   if not run.agrees(i, b) and i not in seen.token_differences]  # fmt: skip
    agreeing = sum(run.agrees(i, answer) for i, answer in enumerate(seen.answers))
    result = CheckResult(kind, len(seen.answers), len(seen.answers) - len(differing), agreeing,
                         run.perplexity, _perplexity(seen.nll), tolerance, len(run.ids),
                         len(seen.token_differences),
                         next(iter(seen.token_differences.values()), None), differing)  # fmt: skip
    if seen.token_differences and not allow_tokenizer_difference:
        raise ExportMismatch(f"the {kind} export's tokenizer differs from the run's: "
                             f"{result.summary()}; answers that differ on such prompts: "
                             f"{len(differing) - len(untokenized)}; pass --allow-tokenizer-difference "
                             "to keep the export anyway")  # fmt: skip
    if abs(result.perplexity_change) > tolerance or (exact and untokenized):
        first = next((d for d in differing if d["index"] in untokenized), None)
        first = first or (differing[0] if differing else None)
        detail = f"; first differing answer: run {first['run'][:60]!r} vs export " \
                 f"{first['export'][:60]!r}" if first else ""  # fmt: skip
        raise ExportMismatch(f"the {kind} export's weights do not match the run: "
                             f"{result.summary()}{detail}")  # fmt: skip
    return result


def check_merged(folder: Any, run: Reference, max_new_tokens: int) -> CheckResult:
    """Load ``folder`` with plain `transformers` (its own tokenizer, chat template and
    generation config) and compare it with the run."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    answers = []
    for prompt in run.prompts[: len(run.answers)]:
        inputs = tokenizer.apply_chat_template(prompt, add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)  # fmt: skip
        with torch.inference_mode():  # the folder's generation config: its stop tokens
            out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
        new = out[0, inputs["input_ids"].shape[1] :]
        answers.append(tokenizer.decode(new, skip_special_tokens=True).strip())
    nll = [hf_nll(model, ids, scored) for ids, scored in zip(run.ids, run.scored, strict=True)]
    return compare("merged", run, Observed(answers, nll))


def hf_nll(model: Any, ids: list[int], scored: list[int]) -> tuple[float, int]:
    """A transformers model's summed NLL of the scored tokens of ``ids``."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].double()
    return nll_from_logits(logits.numpy(), ids, scored)


def nll_from_logits(logits: Any, ids: list[int], scored: list[int]) -> tuple[float, int]:
    """Summed NLL of the scored tokens; ``logits[p]`` predicts ``ids[p + 1]``."""
    import numpy as np

    positions = [p for p in range(len(ids) - 1) if scored[p + 1]]
    rows = np.asarray(logits, dtype=np.float64)[positions]
    peak = rows.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(rows - peak).sum(axis=1)) + peak[:, 0]
    chosen = rows[np.arange(len(positions)), [ids[p + 1] for p in positions]]
    return float((log_norm - chosen).sum()), len(positions)


def _perplexity(nll: list[tuple[float, int]]) -> float:
    tokens = sum(count for _, count in nll)
    return math.exp(sum(total for total, _ in nll) / tokens) if tokens else float("nan")
