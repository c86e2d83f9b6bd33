"""Safe model loading without skops' default trust lists: the audited types are every type
the file names, skops trusts exactly those, and an untrusted type is still refused with a
one-line error (by the loader, by `git ml serve`, by the gates)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import gitml
from tests.support.checks import good_model, save_model
from tests.support.deploy import make_model_repo
from tests.support.models import NotTrusted, load_fresh

PIPELINE_TYPES = {"sklearn.pipeline.Pipeline", "sklearn.compose._column_transformer.ColumnTransformer",
                  "sklearn.preprocessing._encoders.OneHotEncoder",
                  "sklearn.preprocessing._data.StandardScaler",
                  "sklearn.linear_model._logistic.LogisticRegression"}


def test_fresh_load_audits_every_type_and_imports_only_what_the_model_uses(tmp_path: Path) -> None:
    path = save_model(good_model("logreg"), tmp_path / "m.skops")
    out = load_fresh(path, drop="sklearn.pipeline.Pipeline")
    assert out["model"] == "Pipeline"
    assert set(out["audited"]) >= PIPELINE_TYPES, out["audited"]
    # skops trusts nothing beyond the audited list, not even a scikit-learn estimator
    assert out["skops_refused"] and "sklearn.pipeline.Pipeline" in out["skops_refused"]
    modules = set(out["modules"])
    # skops' default scan imports every estimator module (sklearn.ensemble, ...) and,
    # through sklearn.utils._testing, pytest; the model needs none of them
    assert not {"sklearn.ensemble", "sklearn.utils._testing", "pytest"} & modules
    assert "sklearn.linear_model._logistic" in modules


def test_fresh_load_refuses_types_outside_the_policy(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    out = load_fresh(save_model(FunctionTransformer(func=eval), tmp_path / "eval.skops"))
    assert "untrusted type(s): builtins.eval" in out["error"] and "\n" not in out["error"]
    out = load_fresh(save_model(NotTrusted(), tmp_path / "custom.skops"))
    assert "untrusted type(s): tests.support.models.NotTrusted" in out["error"]
    assert "model" not in out


def test_serve_and_check_refuse_an_untrusted_model_in_one_line(tmp_path: Path) -> None:
    repo = make_model_repo(tmp_path / "repo", model=NotTrusted())
    for args in (["serve", "arrests@v1.0.0", "--port", "0"], ["check", "--no-cache"]):
        proc = gitml(repo, *args, check=False)
        err = proc.stderr.strip()
        assert proc.returncode == 1, (args, proc.stdout, err)
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        assert "untrusted type(s): tests.support.models.NotTrusted" in err, err


def test_a_skops_that_needs_more_than_the_lists_is_imported_as_shipped(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = save_model(good_model("logreg"), tmp_path / "m.skops")
    script = (
        "import sys, types\n"
        "sys.modules['skops.io._trusted_types'] = types.ModuleType('skops.io._trusted_types')\n"
        "from gitml.models.load import load_model_bytes, skops_io\n"
        "m = load_model_bytes(open(sys.argv[1], 'rb').read(), 'm.skops', 'k')\n"
        "import skops.io._trusted_types as t\n"
        "print(type(m).__name__, len(t.SKLEARN_ESTIMATOR_TYPE_NAMES) > 100)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Pipeline", "True"]
