"""The adapter router's files (no pickle anywhere), written and read with every field checked.

Files written by ``AdapterRouter.save``:

* ``router.json`` — ``format``/``version``, the analyzer's name, the vectorizer settings
  (``sublinear_tf``, ``norm``, ``use_idf``, ``smooth_idf``), the classifier settings
  (``C``, ``class_weight``, ``max_iter``, ``link``: ``"logistic"`` for two adapters — one
  coefficient row, ``P(classes[1]) = sigmoid(z)`` — or ``"softmax"``), ``classes`` (the
  adapter names, in column order), ``vocabulary`` (the terms, in feature order) and the
  fit ``report``;
* ``router.safetensors`` — float64 tensors ``idf`` ``[n_terms]``, ``coef``
  ``[n_rows, n_terms]`` and ``intercept`` ``[n_rows]`` (``n_rows`` is 1 for two adapters,
  else the number of adapters).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ft_plugin.errors import UserError

CONFIG_FILE = "router.json"
WEIGHTS_FILE = "router.safetensors"
FORMAT = "ft_plugin.adapter_router"
VERSION = 1
ANALYZER = "ft_plugin.data.clustering.analyze"


class RouterError(UserError, ValueError):
    """Bad routing data or a router folder that cannot be loaded (a ``ValueError``)."""


@dataclass(frozen=True)
class _Fitted:
    """The arrays a prediction needs (float64)."""

    classes: tuple[str, ...]
    vocabulary: tuple[str, ...]
    idf: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    index: dict[str, int]


def write_router(
    folder: Path, fitted: _Fitted, settings: dict[str, Any], report: dict[str, Any] | None
) -> Path:
    """Write ``router.json`` (``settings``: ``C``, ``class_weight``, ``sublinear_tf``,
    ``max_iter``) and ``router.safetensors`` into ``folder``; return the folder."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT, "version": VERSION, "analyzer": ANALYZER,
        "vectorizer": {"sublinear_tf": settings["sublinear_tf"], "norm": "l2", "use_idf": True,
                       "smooth_idf": True},
        "classifier": {"type": "logistic_regression", "C": settings["C"],
                       "class_weight": settings["class_weight"], "max_iter": settings["max_iter"],
                       "link": "logistic" if fitted.coef.shape[0] == 1 else "softmax"},
        "classes": list(fitted.classes), "vocabulary": list(fitted.vocabulary), "report": report,
    }  # fmt: skip
    (folder / CONFIG_FILE).write_text(
        json.dumps(config, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    tensors = {"idf": fitted.idf, "coef": fitted.coef, "intercept": fitted.intercept}
    save_file(
        {name: np.ascontiguousarray(array, dtype=np.float64) for name, array in tensors.items()},
        str(folder / WEIGHTS_FILE),
        metadata={"format": FORMAT, "version": str(VERSION)},
    )
    return folder


def _read_config(config_path: Path) -> dict[str, Any]:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RouterError(f"{config_path}: not valid JSON: {error}") from error
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise RouterError(f"{config_path}: not an adapter router (format != {FORMAT!r})")
    if config.get("version") != VERSION:
        raise RouterError(
            f"{config_path}: router format version {config.get('version')!r}, this "
            f"ft_plugin reads version {VERSION}"
        )
    if config.get("analyzer") != ANALYZER:
        raise RouterError(f"{config_path}: unknown analyzer {config.get('analyzer')!r}")
    vectorizer = config.get("vectorizer") or {}
    if vectorizer.get("norm") != "l2" or vectorizer.get("use_idf") is not True:
        raise RouterError(f"{config_path}: only norm='l2' with use_idf=true is supported")
    classes, vocabulary = config.get("classes"), config.get("vocabulary")
    if not (isinstance(classes, list) and len(classes) >= 2 and isinstance(vocabulary, list)):
        raise RouterError(f"{config_path}: needs 'classes' (2+ names) and 'vocabulary'")
    if len(set(classes)) != len(classes) or len(set(vocabulary)) != len(vocabulary):
        raise RouterError(f"{config_path}: 'classes' and 'vocabulary' must not repeat")
    return config


def _read_tensors(weights_path: Path, classes: int, terms: int) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(weights_path))
    except Exception as error:  # safetensors raises its own error types
        raise RouterError(f"{weights_path}: unreadable safetensors file: {error}") from error
    n_rows = 1 if classes == 2 else classes
    expected = {"idf": (terms,), "coef": (n_rows, terms), "intercept": (n_rows,)}
    for name, shape in expected.items():
        array = tensors.get(name)
        if array is None or array.shape != shape or array.dtype != np.float64:
            got = None if array is None else f"{array.dtype}{list(array.shape)}"
            raise RouterError(
                f"{weights_path}: tensor {name!r} must be float64{list(shape)}, got {got}"
            )
        if not np.isfinite(array).all():
            raise RouterError(f"{weights_path}: tensor {name!r} has non-finite values")
    return tensors


def read_router(folder: Path) -> tuple[_Fitted, dict[str, Any], Any]:
    """The fitted arrays, the settings (``AdapterRouter``'s keyword arguments) and the
    report of a router folder written by :func:`write_router` (:class:`RouterError` when
    any file or field is missing or wrong)."""
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise RouterError(f"{path}: missing (not a folder written by AdapterRouter.save)")
    config = _read_config(config_path)
    classes, vocabulary = config["classes"], config["vocabulary"]
    tensors = _read_tensors(weights_path, len(classes), len(vocabulary))
    vectorizer, classifier = config.get("vectorizer") or {}, config.get("classifier") or {}
    settings = {"C": classifier.get("C", 10.0),
                "class_weight": classifier.get("class_weight", "balanced"),
                "sublinear_tf": bool(vectorizer.get("sublinear_tf", True)),
                "max_iter": classifier.get("max_iter", 1000)}  # fmt: skip
    fitted = _Fitted(
        classes=tuple(str(name) for name in classes),
        vocabulary=tuple(str(term) for term in vocabulary),
        idf=tensors["idf"], coef=tensors["coef"], intercept=tensors["intercept"],
        index={str(term): i for i, term in enumerate(vocabulary)},
    )  # fmt: skip
    return fitted, settings, config.get("report")
