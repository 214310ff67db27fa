"""Routing prompts to per-task adapters (ft_plugin.continual.router)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from ft_plugin.continual.router import AdapterRouter, RouterReport

LAW = ["contract", "tax", "court", "lawsuit", "statute", "liability", "tenant", "copyright"]
MED = ["blood", "pressure", "diabetes", "insulin", "fever", "vaccine", "dosage", "symptom"]
CODE = ["python", "function", "compile", "bug", "variable", "loop", "recursion", "debugger"]
CN_LAW = ["合同纠纷", "税法规定", "法院判决", "知识产权", "租赁合同"]
CN_MED = ["高血压", "糖尿病", "发烧症状", "疫苗接种", "药物剂量"]
TEMPLATES = [
    "What does {a} mean for {b}?",
    "Explain {a} and {b} briefly",
    "How is {a} related to {b}",
    "I need help with {a}, especially {b}",
]
CN_TEMPLATES = ["请解释{a}和{b}", "{a}与{b}有什么关系？", "关于{a}的问题，特别是{b}"]


def prompts(words: list[str], templates: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        rng.choice(templates).format(a=rng.choice(words), b=rng.choice(words)) for _ in range(n)
    ]


def data() -> dict[str, list[str]]:
    return {
        "law": prompts(LAW, TEMPLATES, 30, 1) + prompts(CN_LAW, CN_TEMPLATES, 15, 2),
        "medical": prompts(MED, TEMPLATES, 30, 3) + prompts(CN_MED, CN_TEMPLATES, 15, 4),
        "code": prompts(CODE, TEMPLATES, 25, 5),
    }


@pytest.fixture(scope="module")
def router() -> AdapterRouter:
    router = AdapterRouter()
    router.fit(data(), seed=0)
    return router


def test_fit_reports_holdout_accuracy_recall_and_confusion(router):
    report = router.report
    assert isinstance(report, RouterReport)
    assert report.n_train + report.n_holdout == 45 + 45 + 25
    assert report.n_holdout == 23  # ceil(0.2 * 115)
    assert report.accuracy == 1.0
    assert report.adapters == ["code", "law", "medical"] == router.adapters
    assert set(report.per_adapter_recall) == {"code", "law", "medical"}
    assert all(recall == 1.0 for recall in report.per_adapter_recall.values())
    assert np.trace(np.array(report.confusion)) == report.n_holdout
    assert sum(map(sum, report.confusion)) == report.n_holdout
    json.dumps(report.to_dict())  # JSON-ready


def test_routes_english_and_chinese_prompts(router):
    assert router.route("Can my landlord break the tenant contract?") == "law"
    assert router.route("What insulin dosage is safe for diabetes?") == "medical"
    assert router.route("Why does my python loop never compile?") == "code"
    assert router.route("高血压患者可以接种疫苗吗") == "medical"
    assert router.route("租赁合同纠纷怎么去法院") == "law"
    probabilities = router.route_proba("fever and blood pressure")
    assert list(probabilities) == ["code", "law", "medical"]
    assert sum(probabilities.values()) == pytest.approx(1.0)
    assert max(probabilities, key=probabilities.get) == "medical"
    # a prompt with no known term still gets a distribution (the intercepts)
    assert sum(router.route_proba("").values()) == pytest.approx(1.0)


def test_numpy_predictions_match_scikit_learn(router):
    """The numpy path computes TfidfVectorizer + LogisticRegression.predict_proba."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from ft_plugin.data.clustering import analyze

    texts, labels = [], []
    for adapter, items in data().items():
        texts += items
        labels += [adapter] * len(items)
    vectorizer = TfidfVectorizer(analyzer=analyze, sublinear_tf=True)
    classifier = LogisticRegression(C=10.0, class_weight="balanced", max_iter=1000)
    classifier.fit(vectorizer.fit_transform(texts), labels)
    queries = ["tax court ruling", "python fever bug", "糖尿病 insulin", "nothing known here"]
    expected = classifier.predict_proba(vectorizer.transform(queries))
    got = np.array([list(router.route_proba(q).values()) for q in queries])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def test_save_load_round_trip_without_pickle(router, tmp_path):
    folder = router.save(tmp_path / "router")
    assert sorted(p.name for p in folder.iterdir()) == ["router.json", "router.safetensors"]
    config = json.loads((folder / "router.json").read_text(encoding="utf-8"))
    assert config["classes"] == ["code", "law", "medical"]
    assert config["classifier"]["link"] == "softmax"
    assert "高血" in config["vocabulary"]
    loaded = AdapterRouter.load(folder)
    assert loaded.report == router.report
    for prompt in ["tax court ruling", "高血压 fever", "python", "", "unknown words only"]:
        assert loaded.route_proba(prompt) == router.route_proba(prompt)  # bit-identical
        assert loaded.route(prompt) == router.route(prompt)


def test_two_adapters_use_one_logistic_row_and_round_trip(tmp_path):
    two = {"law": data()["law"], "code": data()["code"]}
    router = AdapterRouter()
    router.fit(two, seed=3)
    loaded = AdapterRouter.load(router.save(tmp_path))
    assert json.loads((tmp_path / "router.json").read_text())["classifier"]["link"] == "logistic"
    assert loaded.route_proba("python bug") == router.route_proba("python bug")
    assert loaded.route("法院判决") == "law"


def test_fit_is_deterministic_given_a_seed():
    first, second = AdapterRouter(), AdapterRouter()
    assert first.fit(data(), seed=5) == second.fit(data(), seed=5)
    assert first.route_proba("tax dosage") == second.route_proba("tax dosage")


def test_holdout_zero_skips_evaluation():
    router = AdapterRouter()
    report = router.fit({"a": ["tax law"], "b": ["blood test"]}, holdout=0)
    assert report.accuracy is None and report.n_holdout == 0 and report.n_train == 2
    assert router.route("law") == "a"


@pytest.mark.parametrize(
    ("prompts_by_adapter", "kwargs", "message"),
    [
        ({"only": ["tax law", "court case"]}, {}, "at least 2 adapters"),
        ({}, {}, "at least 2 adapters"),
        ({"a": ["tax law"], "b": []}, {"holdout": 0}, "no prompts"),
        ({"a": "tax law", "b": ["blood"]}, {"holdout": 0}, "list of strings"),
        ({"a": ["tax law"], "b": ["blood test", "x ray"]}, {}, "too few prompts"),
        ({"a": ["tax law"] * 4, "b": ["blood"] * 4}, {"holdout": 1.0}, "holdout"),
        ({"a": ["the", "a"], "b": ["of", "and"]}, {"holdout": 0}, "no usable terms"),
    ],
)
def test_bad_training_data_raises(prompts_by_adapter, kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdapterRouter().fit(prompts_by_adapter, **kwargs)


def test_unfitted_router_and_bad_folders(tmp_path, router):
    with pytest.raises(RuntimeError, match="not fitted"):
        AdapterRouter().route("x")
    with pytest.raises(ValueError, match="missing"):
        AdapterRouter.load(tmp_path)
    folder = router.save(tmp_path / "r")
    config = json.loads((folder / "router.json").read_text(encoding="utf-8"))
    config["vocabulary"] = config["vocabulary"][:-1]  # no longer matches the tensors
    (folder / "router.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match="must be float64"):
        AdapterRouter.load(folder)
    config["format"] = "something else"
    (folder / "router.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match="not an adapter router"):
        AdapterRouter.load(folder)
