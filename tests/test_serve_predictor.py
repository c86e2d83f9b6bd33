"""The fast NumPy path gives exactly the model's answers, or is not used (no server here:
the predictor and the request schema on real models and the arrests data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.checks import FEATURES, arrests_split, good_model, pipeline
from tests.support.serve import MODEL, make_repo


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import os

    from gitml.models.bundle import build_bundle
    from gitml.repo import MLRepo

    root = tmp_path_factory.mktemp("pred")
    repo = make_repo(root / "repo")
    old = os.getcwd()
    os.chdir(repo)
    try:
        return build_bundle(MLRepo.discover(), MODEL, f"{MODEL}@v1.0.0", root / "b")
    finally:
        os.chdir(old)


def _columns(schema: Any, df: Any) -> tuple[dict[str, np.ndarray], int]:
    return schema.from_records(df.astype(object).to_dict(orient="records"))


def _predictor(model: Any, bundle: Any) -> Any:
    from gitml.serve.loaded import smoke_columns
    from gitml.serve.predictor import Predictor
    from gitml.serve.schema import Schema

    p = Predictor(model, bundle)
    cols, n = smoke_columns(bundle, Schema(bundle.inputs))
    p.prepare(cols, n)
    return p


def test_fast_path_matches_the_pipeline(bundle: Any) -> None:
    from gitml.serve.schema import Schema

    model = good_model("logreg")
    p = _predictor(model, bundle)
    assert p.mode == "numpy", p.parity_error
    _, test = arrests_split()
    df = test[FEATURES].iloc[:300].copy()
    df.loc[df.index[:5], "colour"] = "Purple"  # unknown category: the encoder ignores it
    cols, n = _columns(Schema(bundle.inputs), df)
    got = p.predict(cols, n)
    assert got.labels.tolist() == model.predict(df).tolist()
    assert np.allclose(got.proba, model.predict_proba(df), rtol=0, atol=1e-12)
    assert np.allclose(got.values, model.predict_proba(df)[:, 1])
    one = p.predict({k: v[:1] for k, v in cols.items()}, 1)
    assert one.labels.tolist() == model.predict(df.head(1)).tolist()


def test_unknown_steps_fall_back_to_the_dataframe_path(bundle: Any) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from gitml.serve.schema import Schema

    train, test = arrests_split()
    model = pipeline(HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(
        train[FEATURES], train["released"])
    p = _predictor(model, bundle)
    assert p.mode == "numpy"  # the transformer is known, the final estimator is called on arrays
    assert p.predict(*_columns(Schema(bundle.inputs), test[FEATURES].head(50))).labels.tolist() == \
        model.predict(test[FEATURES].head(50)).tolist()

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import FunctionTransformer

    odd = pipeline(LogisticRegression(max_iter=500))
    odd.steps.insert(1, ("odd", FunctionTransformer(lambda x: x)))
    odd.fit(train[FEATURES], train["released"])
    p2 = _predictor(odd, bundle)
    assert p2.mode == "dataframe" and "FunctionTransformer" in (p2.parity_error or "")
    assert p2.predict(*_columns(Schema(bundle.inputs), test[FEATURES].head(20))).labels.tolist() == \
        odd.predict(test[FEATURES].head(20)).tolist()


def test_a_fast_path_that_disagrees_is_not_used(bundle: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model = good_model("logreg")
    tampered = __import__("copy").deepcopy(model)
    p = _predictor(tampered, bundle)
    assert p.mode == "numpy"
    # change the fitted scaler after compiling: the compiled path no longer matches the model
    from gitml.serve.loaded import smoke_columns
    from gitml.serve.predictor import Predictor
    from gitml.serve.schema import Schema

    q = Predictor(tampered, bundle)
    q.compile()
    tampered.steps[0][1].transformers_[1][1].mean_ = tampered.steps[0][1].transformers_[1][1].mean_ + 1.0
    cols, n = smoke_columns(bundle, Schema(bundle.inputs))
    fast = q._fast
    q.compile = lambda: setattr(q, "_fast", fast)  # type: ignore[method-assign]
    q.prepare(cols, n)
    assert q.mode == "dataframe" and q.parity_error == "fast path disagrees with the model"


def test_schema_names_the_problem(bundle: Any, tmp_path: Path) -> None:
    from gitml.serve.schema import RequestError, Schema

    s = Schema(bundle.inputs)
    with pytest.raises(RequestError, match="row 1 is str"):
        s.from_split({"columns": s.names, "data": [[{"colour": "White", "sex": "Male", "employed": "Yes",
                                                     "citizen": "Yes"}.get(c, 1) for c in s.names],
                                                   [("x" if c == "age" else {"colour": "White", "sex": "Male",
                                                                              "employed": "Yes", "citizen": "Yes"}.get(c, 1))
                                                    for c in s.names]]})
    with pytest.raises(RequestError, match="fractional"):
        s.from_columnar({c: ["White"] if c in ("colour", "sex", "employed", "citizen") else [1.5] for c in s.names},
                        "inputs")
    with pytest.raises(RequestError, match="out of range"):
        s.from_columnar({c: ["White"] if c in ("colour", "sex", "employed", "citizen") else [10**400]
                         for c in s.names}, "inputs")
