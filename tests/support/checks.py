"""Shared builders for the checks tests: the arrests data set, real models, a gitml repo
with a declared model. Models are small so the whole checks suite stays fast."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

CAT = ["colour", "sex", "employed", "citizen"]
NUM = ["year", "age", "checks"]
FEATURES = CAT + NUM


@lru_cache(maxsize=1)
def arrests_split() -> tuple[Any, Any]:
    """(train, eval) frames of sklego's arrests data, a fixed 70/30 split."""
    from sklearn.model_selection import train_test_split
    from sklego.datasets import load_arrests

    df = load_arrests(as_frame=True)
    for c in [*CAT, "released"]:
        df[c] = df[c].astype(object)
    train, test = train_test_split(df, test_size=0.3, random_state=0, stratify=df["released"])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def pipeline(estimator: Any, cat: list[str] | None = None, num: list[str] | None = None) -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cat = CAT if cat is None else cat
    num = NUM if num is None else num
    parts: list[Any] = []
    if cat:
        parts.append((OneHotEncoder(handle_unknown="ignore"), cat))
    if num:
        parts.append((StandardScaler(), num))
    return make_pipeline(make_column_transformer(*parts), estimator)


@lru_cache(maxsize=8)
def good_model(kind: str = "logreg") -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    train, _ = arrests_split()
    est: Any
    if kind == "logreg":
        est = LogisticRegression(max_iter=1000)
    elif kind == "hgb":
        est = HistGradientBoostingClassifier(max_iter=60, random_state=0)
    elif kind == "forest":
        est = RandomForestClassifier(n_estimators=60, max_depth=6, random_state=0)
    else:
        raise ValueError(kind)
    return pipeline(est).fit(train[FEATURES], train["released"])


@lru_cache(maxsize=1)
def worse_model() -> Any:
    """Truly worse: it never sees `checks` and `employed`, the two strongest features,
    and learns from noisy labels (15% flipped)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    train, _ = arrests_split()
    rng = np.random.default_rng(0)
    y = train["released"].to_numpy().copy()
    flip = rng.random(len(y)) < 0.15
    y[flip] = np.where(y[flip] == "Yes", "No", "Yes")
    m = pipeline(LogisticRegression(max_iter=1000), cat=["colour", "sex", "citizen"], num=["year", "age"])
    return m.fit(train[FEATURES], y)


@lru_cache(maxsize=1)
def biased_model() -> Any:
    """Deliberately biased: trained on labels where 20% of Black arrestees were turned
    to 'No'. Overall accuracy/AUC stay within the regression tolerance; fairness does not."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    train, _ = arrests_split()
    rng = np.random.default_rng(1)
    y = train["released"].to_numpy().copy()
    black = (train["colour"] == "Black").to_numpy()
    y[black & (rng.random(len(y)) < 0.2)] = "No"
    return pipeline(LogisticRegression(max_iter=1000)).fit(train[FEATURES], y)


def save_model(model: Any, path: Path) -> Path:
    import skops.io as sio

    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    return path


def write_eval(path: Path, n: int | None = None) -> Path:
    _, test = arrests_split()
    path.parent.mkdir(parents=True, exist_ok=True)
    (test if n is None else test.head(n)).to_parquet(path, index=False)
    return path


CONFIG = """\
[models.arrests]
path = "models/model.skops"
data = "data/eval.parquet"
target = "released"
task = "classification"
positive = "Yes"
sensitive = ["colour", "sex"]

[models.arrests.gates]
min = {{ accuracy = 0.75, roc_auc = 0.65 }}
max_regression = {{ accuracy = 0.02, roc_auc = 0.03 }}
baseline = "{baseline}"
bootstrap = 500
bias = {{ four_fifths = 0.8, max_dp_diff = 0.2, max_eo_diff = 0.25, max_counterfactual_flip = 0.1 }}
explain = {{ max_rank_shift = 6, rows = 100 }}
"""


def write_config(repo: Path, baseline: str = "HEAD", extra: str = "") -> None:
    cfg = repo / ".gitml" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    existing = cfg.read_text() if cfg.exists() else ""
    if "[models.arrests]" in existing:
        existing = existing.split("[models.arrests]")[0]
    cfg.write_text(existing + ("\n" if existing and not existing.endswith("\n") else "")
                   + CONFIG.format(baseline=baseline) + extra)


def model_spec(**gates: Any) -> Any:
    """The arrests model as declared by CONFIG (baseline prod), with ``gates`` overridden."""
    import tomllib

    from gitml.models.spec import parse_model

    raw = tomllib.loads(CONFIG.format(baseline="prod"))["models"]["arrests"]
    raw["gates"].update(gates)
    return parse_model("arrests", raw)
