"""Route a prompt to the per-task adapter that should answer it.

A TF-IDF + logistic-regression classifier (scikit-learn) trained on each adapter's training
prompts. Features come from :func:`ft_plugin.data.clustering.analyze`: lower-cased Latin
words (English stop words and bare numbers dropped) and character bigrams of CJK runs, so
Chinese prompts route as well as English ones.

:meth:`AdapterRouter.fit` first trains on a stratified split and scores the held-out part
(:class:`RouterReport`), then refits on all prompts. Predictions are computed with numpy
from the fitted arrays (term counts → optional ``1 + log(tf)`` → × idf → L2 normalisation →
``coef @ x + intercept`` → logistic/softmax), which is what scikit-learn's
``TfidfVectorizer`` + ``LogisticRegression.predict_proba`` compute, so a router loaded from
disk gives bit-identical probabilities without rebuilding or unpickling scikit-learn objects.

Files: ``router_files.py`` (no pickle anywhere).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ft_plugin.data.clustering import analyze
from ft_plugin.errors import UserError

from .router_files import RouterError, _Fitted, read_router, write_router


@dataclass
class RouterReport:
    """Held-out quality of a router, measured before the final refit on all prompts.

    ``n_train``/``n_holdout`` are the sizes of the stratified split (the final router is
    trained on both). ``per_adapter_recall[a]`` is the share of ``a``'s held-out prompts
    routed to ``a`` (``None`` when none were held out); ``confusion[t][p]`` counts held-out
    prompts of ``adapters[t]`` routed to ``adapters[p]``. With ``holdout=0`` there is no
    evaluation: ``accuracy`` is ``None`` and ``per_adapter_recall``/``confusion`` are empty.
    """

    accuracy: float | None
    per_adapter_recall: dict[str, float | None]
    n_train: int
    n_holdout: int
    adapters: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of the report.

        Example:
            >>> RouterReport(1.0, {"a": 1.0, "b": 1.0}, 8, 2, ["a", "b"]).to_dict()["accuracy"]
            1.0
        """
        return asdict(self)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


class AdapterRouter:
    """TF-IDF + logistic-regression router from a prompt to an adapter name.

    ``C`` is the inverse L2 strength of the logistic regression, ``class_weight="balanced"``
    keeps adapters with few prompts from being drowned out, ``sublinear_tf`` uses
    ``1 + log(tf)`` term frequencies.

    Example:
        >>> router = AdapterRouter()
        >>> report = router.fit({"law": ["tax law code", "contract law dispute"] * 5,
        ...                      "med": ["heart rate blood", "blood pressure drug"] * 5})
        >>> router.route("what does the tax code say about contracts")
        'law'
    """

    def __init__(
        self,
        *,
        C: float = 10.0,
        class_weight: str | None = "balanced",
        sublinear_tf: bool = True,
        max_iter: int = 1000,
    ) -> None:
        if not C > 0:
            raise RouterError(f"C must be positive, got {C}")
        if class_weight not in ("balanced", None):
            raise RouterError(f"class_weight must be 'balanced' or None, got {class_weight!r}")
        self.C = float(C)
        self.class_weight = class_weight
        self.sublinear_tf = bool(sublinear_tf)
        self.max_iter = int(max_iter)
        self.report: RouterReport | None = None
        self._fitted: _Fitted | None = None

    # --- training ------------------------------------------------------------------------

    def _train(self, prompts: list[str], labels: list[str], seed: int) -> _Fitted:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(
            analyzer=analyze,
            sublinear_tf=self.sublinear_tf,
            norm="l2",
            use_idf=True,
            smooth_idf=True,
            dtype=np.float64,
        )
        try:
            features = vectorizer.fit_transform(prompts)
        except ValueError as error:  # "empty vocabulary" when every prompt is stop words
            raise RouterError(
                f"the prompts have no usable terms (only stop words, numbers or symbols?): {error}"
            ) from error
        classifier = LogisticRegression(
            C=self.C,
            class_weight=self.class_weight,
            max_iter=self.max_iter,
            random_state=seed,
        )
        classifier.fit(features, labels)
        vocabulary = tuple(str(term) for term in vectorizer.get_feature_names_out())
        return _Fitted(
            classes=tuple(str(name) for name in classifier.classes_),
            vocabulary=vocabulary,
            idf=np.asarray(vectorizer.idf_, dtype=np.float64),
            coef=np.asarray(classifier.coef_, dtype=np.float64),
            intercept=np.asarray(classifier.intercept_, dtype=np.float64),
            index={term: i for i, term in enumerate(vocabulary)},
        )

    def fit(
        self,
        prompts_by_adapter: Mapping[str, list[str]],
        *,
        seed: int = 0,
        holdout: float = 0.2,
    ) -> RouterReport:
        """Train on ``prompts_by_adapter`` (adapter name → its training prompts).

        Scores a stratified ``holdout`` share of the prompts (seeded by ``seed``) with a
        router trained on the rest, then refits on everything. ``holdout=0`` skips the
        evaluation. Raises ``ValueError`` (:class:`RouterError`) for fewer than two
        adapters, an adapter without prompts, or too few prompts for the split.

        Example:
            >>> AdapterRouter().fit({"law": ["tax law"] * 5, "med": ["blood test"] * 5}).accuracy
            1.0
        """
        from sklearn.metrics import confusion_matrix
        from sklearn.model_selection import train_test_split

        if not isinstance(prompts_by_adapter, Mapping):
            raise RouterError("prompts_by_adapter must map adapter names to lists of prompts")
        if len(prompts_by_adapter) < 2:
            raise RouterError(
                f"routing needs at least 2 adapters to choose between, got "
                f"{len(prompts_by_adapter)} ({sorted(map(str, prompts_by_adapter))})"
            )
        prompts: list[str] = []
        labels: list[str] = []
        for adapter, texts in prompts_by_adapter.items():
            if not isinstance(adapter, str) or not adapter:
                raise RouterError(f"adapter names must be non-empty strings, got {adapter!r}")
            if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
                raise RouterError(f"adapter {adapter!r}: prompts must be a list of strings")
            if not texts:
                raise RouterError(f"adapter {adapter!r} has no prompts")
            prompts += list(texts)
            labels += [adapter] * len(texts)
        if not 0.0 <= holdout < 1.0:
            raise RouterError(f"holdout must be in [0, 1), got {holdout}")

        n_adapters = len(prompts_by_adapter)
        report = RouterReport(None, {}, len(prompts), 0, sorted(prompts_by_adapter), [], seed)
        if holdout > 0:
            n_holdout = math.ceil(holdout * len(prompts))  # what train_test_split holds out
            smallest = min(len(texts) for texts in prompts_by_adapter.values())
            if smallest < 2 or n_holdout < n_adapters or len(prompts) - n_holdout < n_adapters:
                raise RouterError(
                    f"too few prompts for a stratified {holdout:.0%} holdout: {len(prompts)} "
                    f"prompts, {n_holdout} held out, {n_adapters} adapters, the smallest with "
                    f"{smallest} prompt(s); every adapter needs 2+ prompts and both parts at "
                    "least one prompt per adapter. Add prompts, raise holdout, or pass holdout=0"
                )
            train_x, test_x, train_y, test_y = train_test_split(
                prompts, labels, test_size=holdout, stratify=labels, random_state=seed
            )
            fitted = self._train(train_x, train_y, seed)
            predicted = [fitted.classes[int(np.argmax(self._proba(fitted, x)))] for x in test_x]
            classes = list(fitted.classes)
            matrix = confusion_matrix(test_y, predicted, labels=classes)
            recall: dict[str, float | None] = {}
            for row, adapter in enumerate(classes):
                total = int(matrix[row].sum())
                recall[adapter] = int(matrix[row, row]) / total if total else None
            correct = sum(p == t for p, t in zip(predicted, test_y, strict=True))
            report = RouterReport(
                accuracy=correct / len(test_y),
                per_adapter_recall=recall,
                n_train=len(train_x),
                n_holdout=len(test_x),
                adapters=classes,
                confusion=matrix.astype(int).tolist(),
                seed=seed,
            )

        self._fitted = self._train(prompts, labels, seed)
        self.report = report
        return report

    # --- prediction ----------------------------------------------------------------------

    def _require(self) -> _Fitted:
        if self._fitted is None:
            raise RuntimeError("the router is not fitted: call fit() or AdapterRouter.load()")
        return self._fitted

    def _features(self, fitted: _Fitted, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero TF-IDF entries of one prompt: (feature indices, L2-normalised values)."""
        counts = Counter(fitted.index[t] for t in analyze(prompt) if t in fitted.index)
        indices = np.array(sorted(counts), dtype=np.int64)
        tf = np.array([counts[i] for i in indices], dtype=np.float64)
        if self.sublinear_tf:
            tf = np.log(tf) + 1.0
        values = tf * fitted.idf[indices]
        norm = math.sqrt(float(np.dot(values, values)))
        return indices, values / norm if norm > 0 else values

    def _proba(self, fitted: _Fitted, prompt: str) -> np.ndarray:
        """Class probabilities of one prompt, in ``fitted.classes`` order."""
        indices, values = self._features(fitted, prompt)
        scores = fitted.coef[:, indices] @ values + fitted.intercept
        if fitted.coef.shape[0] == 1:  # two classes: one logit for classes[1]
            positive = _sigmoid(float(scores[0]))
            return np.array([1.0 - positive, positive])
        exp = np.exp(scores - scores.max())
        return exp / exp.sum()

    @property
    def adapters(self) -> list[str]:
        """The adapter names the router chooses between (sorted)."""
        return list(self._require().classes)

    def route_proba(self, prompt: str) -> dict[str, float]:
        """Probability of each adapter for ``prompt`` (sums to 1).

        A prompt with no known term gets the intercept-only probabilities.

        Example (usage, not run as a doctest: it needs a model, files or the Hub)::

            router.route_proba("blood pressure")  # {'law': 0.03, 'med': 0.97}
        """
        fitted = self._require()
        probabilities = self._proba(fitted, prompt)
        return {name: float(p) for name, p in zip(fitted.classes, probabilities, strict=True)}

    def route(self, prompt: str) -> str:
        """The adapter that should answer ``prompt`` (ties go to the first name in order).

        Example (usage, not run as a doctest: it needs a model, files or the Hub)::

            router.route("高血压的药物")  # 'med'
        """
        fitted = self._require()
        return fitted.classes[int(np.argmax(self._proba(fitted, prompt)))]

    # --- persistence ---------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write ``router.json`` and ``router.safetensors`` into ``folder``; return the folder.

        Example (usage, not run as a doctest: it needs a model, files or the Hub)::

            router.save("runs/router")  # PosixPath('runs/router')
        """
        settings = {"C": self.C, "class_weight": self.class_weight,
                    "sublinear_tf": self.sublinear_tf, "max_iter": self.max_iter}  # fmt: skip
        report = self.report.to_dict() if self.report else None
        return write_router(Path(folder), self._require(), settings, report)

    @classmethod
    def load(cls, folder: str | Path) -> AdapterRouter:
        """Rebuild a router saved by :meth:`save` (no pickle; every field is validated).

        Example (usage, not run as a doctest: it needs a model, files or the Hub)::

            AdapterRouter.load("runs/router").route("tax law")  # 'law'
        """
        fitted, settings, report = read_router(Path(folder))
        router = cls(**settings)
        router._fitted = fitted
        if isinstance(report, dict):
            try:
                router.report = RouterReport(**report)
            except TypeError:
                router.report = None
        return router


def load_run_router(run_dir: str | Path) -> AdapterRouter:
    """The router a run directory of task adapters (``adapters:``) was trained with.

    Example:
        >>> load_run_router("runs/nowhere")
        Traceback (most recent call last):
        ...
        ft_plugin.errors.UserError: runs/nowhere: no router (train a recipe with adapters: first)
    """
    from ft_plugin.rundir import RunDir

    folder = RunDir(run_dir).router
    if not folder.is_dir():
        raise UserError(f"{run_dir}: no router (train a recipe with adapters: first)")
    return AdapterRouter.load(folder)
