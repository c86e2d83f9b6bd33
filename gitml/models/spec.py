"""Model declarations: ``[models.<name>]`` in the committed ``.gitml/config.toml``.

```toml
[models.arrests]
path = "models/model.skops"          # a gitml artifact (pointer) or a plain Git file
data = "data/eval.parquet"           # evaluation data (parquet or csv)
target = "released"
task = "classification"              # or "regression"
positive = "Yes"                     # the favourable / positive label
sensitive = ["colour", "sex"]
features = ["colour", "sex", ...]    # optional; default: every column but the target
[models.arrests.gates]
min = { accuracy = 0.7, roc_auc = 0.7 }
max = { log_loss = 0.6 }
max_regression = { accuracy = 0.02 } # vs the baseline, bootstrap-aware
baseline = "prod"                    # arrests#prod, arrests@v1.2.0, or any Git revision
bias = { four_fifths = 0.8, max_dp_diff = 0.2, max_eo_diff = 0.2, max_counterfactual_flip = 0.1 }
explain = { max_rank_shift = 3, min_kendall_tau = 0.3, top_k = 3 }
```

Parsing here is pure (no pandas); :func:`validate_columns` checks a loaded frame.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.errors import ConfigError
from gitml.models.limits import parse_gates
from gitml.models.tables import TABLE_SUFFIXES

if TYPE_CHECKING:
    import pandas as pd

    from gitml.repo import MLRepo

TASKS = ("classification", "regression")
MODEL_KEYS = frozenset({"path", "data", "target", "task", "positive", "sensitive", "features",
                        "gates", "reference", "description", "trusted"})
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# GTO's grammar: versions are semver tags name@vX.Y.Z; stages are name#stage (or the
# numbered name#stage#N assignments). Stages a baseline may name when the repository
# declares none under [registry] stages:
DEFAULT_STAGES = ("dev", "staging", "prod", "production")
VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
STAGE_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass
class ModelSpec:
    name: str
    path: str
    data: str
    target: str
    task: str
    positive: Any = None
    sensitive: list[str] = field(default_factory=list)
    features: list[str] | None = None
    gates: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def key(self, sub: str) -> str:
        """The dotted config key of a field, for error messages."""
        return f"models.{self.name}.{sub}"

    @property
    def confidence(self) -> float:
        return float(self.gates.get("confidence", 0.95))

    @property
    def n_bootstrap(self) -> int:
        return int(self.gates.get("bootstrap", 1000))

    @property
    def seed(self) -> int:
        return int(self.gates.get("seed", 0))

    @property
    def baseline(self) -> str | None:
        b = self.gates.get("baseline")
        return str(b) if b else None

    def feature_columns(self, columns: list[str]) -> list[str]:
        if self.features is not None:
            return list(self.features)
        return [c for c in columns if c != self.target]


def _want_str(name: str, sub: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"models.{name}.{sub}: expected a non-empty string, got {value!r}",
                          f"set {sub} = \"...\" under [models.{name}] in .gitml/config.toml")
    return value.strip()


def _want_str_list(name: str, sub: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"models.{name}.{sub}: expected a list of column names, got {value!r}",
                          f"write {sub} = [\"col1\", \"col2\"]")
    return list(value)


def parse_model(name: str, raw: Any) -> ModelSpec:
    """Validate one ``[models.<name>]`` table (without looking at data)."""
    if not NAME_RE.match(name):
        raise ConfigError(f"models.{name}: invalid model name", "use letters, digits, '-', '_' or '.'")
    if not isinstance(raw, dict):
        raise ConfigError(f"models.{name}: must be a table", f"write [models.{name}] with path, data, target")
    unknown = sorted(set(raw) - MODEL_KEYS)
    if unknown:
        raise ConfigError(f"models.{name}.{unknown[0]}: unknown key",
                          f"known keys: {', '.join(sorted(MODEL_KEYS))}")
    for req in ("path", "data", "target"):
        if req not in raw:
            raise ConfigError(f"models.{name}.{req}: missing", f"add {req} = \"...\" under [models.{name}]")
    task = raw.get("task", "classification")
    if task not in TASKS:
        raise ConfigError(f"models.{name}.task: unknown task {task!r}",
                          "use \"classification\" or \"regression\"")
    gates = parse_gates(name, raw.get("gates", {}), str(task))
    features = raw.get("features")
    if "trusted" in raw:
        raw["trusted"] = _want_str_list(name, "trusted", raw["trusted"])
    spec = ModelSpec(
        name=name,
        path=_want_str(name, "path", raw["path"]).strip("/"),
        data=_want_str(name, "data", raw["data"]).strip("/"),
        target=_want_str(name, "target", raw["target"]),
        task=str(task),
        positive=raw.get("positive"),
        sensitive=_want_str_list(name, "sensitive", raw.get("sensitive", [])),
        features=None if features is None else _want_str_list(name, "features", features),
        gates=gates,
        raw=raw,
    )
    if spec.features is not None and spec.target in spec.features:
        raise ConfigError(f"models.{name}.features: contains the target {spec.target!r}",
                          "remove the target from features")
    suffix = Path(spec.data).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"models.{name}.data: {spec.data}: unsupported format {suffix or '(none)'}",
                          "use a .parquet, .csv, .tsv, .jsonl or .feather file")
    return spec


def model_specs(repo: MLRepo, names: list[str] | None = None) -> list[ModelSpec]:
    """Every declared model (or the named ones), validated; unknown names raise."""
    section = repo.config.section("models")
    return specs_from_section(section, names)


def specs_from_section(section: dict[str, Any], names: list[str] | None = None) -> list[ModelSpec]:
    if names:
        missing = [n for n in names if n not in section]
        if missing:
            known = ", ".join(sorted(section)) or "none declared"
            raise ConfigError(f"models.{missing[0]}: unknown model (known: {known})",
                              f"declare [models.{missing[0]}] in .gitml/config.toml")
        chosen = names
    else:
        chosen = sorted(section)
    import copy

    return [parse_model(n, copy.deepcopy(section[n])) for n in chosen]


def one_spec(repo: MLRepo, name: str | None) -> ModelSpec:
    """The named model, or the only declared one when ``name`` is None."""
    section = repo.config.section("models")
    if name is None:
        if not section:
            raise ConfigError("models: no model declared",
                              "add [models.NAME] with path, data and target to .gitml/config.toml")
        if len(section) > 1:
            raise ConfigError(f"models: {len(section)} models declared ({', '.join(sorted(section))})",
                              "name the model on the command line")
        name = next(iter(section))
    return specs_from_section(section, [name])[0]


def spec_at(repo: MLRepo, name: str, rev: str) -> ModelSpec:
    """The model's declaration as the commit ``rev`` recorded it: an old version is judged,
    packaged and served as it was declared then, never by today's config."""
    config = ".gitml/config.toml"
    raw = repo.git.read_blob(rev, config)
    if raw is None:
        raise ConfigError(f"{config} does not exist at {rev[:12]}",
                          "declare the model under [models.NAME] and commit it")
    try:
        section = tomllib.loads(raw.decode("utf-8")).get("models", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{config} at {rev[:12]} is not valid TOML: {e}",
                          "fix it in a new commit") from e
    if not isinstance(section, dict):
        raise ConfigError(f"{config} at {rev[:12]}: [models] must be a table", "fix it in a new commit")
    return specs_from_section(section, [name])[0]  # an unknown name: "unknown model (known: …)"


def spec_at_or_current(repo: MLRepo, name: str, rev: str) -> ModelSpec:
    """The declaration at ``rev``, or today's for a commit made before the model was declared
    there (GTO registers any commit; its recorded gate results still decide)."""
    if repo.git.read_blob(rev, ".gitml/config.toml") is None:
        return one_spec(repo, name)
    try:
        return spec_at(repo, name, rev)
    except ConfigError as e:
        if "unknown model" not in e.message:
            raise
        return one_spec(repo, name)


def validate_columns(spec: ModelSpec, df: pd.DataFrame) -> None:
    """Check that the target, features and sensitive columns exist in the data."""
    cols = set(map(str, df.columns))
    if spec.target not in cols:
        raise ConfigError(f"{spec.key('target')}: column {spec.target!r} not in {spec.data}",
                          f"columns are: {', '.join(sorted(cols))}")
    for sub, names in (("features", spec.features or []), ("sensitive", spec.sensitive)):
        for c in names:
            if c not in cols:
                raise ConfigError(f"{spec.key(sub)}: column {c!r} not in {spec.data}",
                                  f"columns are: {', '.join(sorted(cols))}")
    y = df[spec.target]
    if spec.task == "regression":
        import pandas as pd

        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise ConfigError(f"{spec.key('task')}: regression but target {spec.target!r} is not numeric",
                              "set task = \"classification\"")
    else:
        n_classes = y.nunique(dropna=True)
        if n_classes < 2:
            raise ConfigError(f"{spec.key('target')}: {spec.target!r} has {n_classes} class(es) in {spec.data}",
                              "evaluation data needs at least two classes")
        if n_classes > max(50, len(y) // 5):
            raise ConfigError(f"{spec.key('task')}: classification but {spec.target!r} has {n_classes} distinct values",
                              "set task = \"regression\"")
        values = set(y.dropna().tolist())
        if spec.positive is not None and spec.positive not in values:
            _wrong_positive(spec, values)


def _wrong_positive(spec: ModelSpec, values: set[Any]) -> None:
    """``positive`` is not a class: say so, and when only its type differs (``"1"`` for
    an integer target), say that the type is the problem."""
    same_text = [v for v in values if str(v) == str(spec.positive)]
    if same_text:
        v = same_text[0]
        raise ConfigError(f"{spec.key('positive')}: {spec.positive!r} is a {type(spec.positive).__name__} "
                          f"but {spec.target!r} holds {type(v).__name__} values",
                          f"write positive = {v!r} (without quotes for a number)")
    shown = ", ".join(sorted(map(str, values)))
    raise ConfigError(f"{spec.key('positive')}: {spec.positive!r} is not a value of {spec.target!r}",
                      f"values are: {shown}")


# baseline revisions --------------------------------------------------------------------
# The lead points these at gitml.git.tags (the GTO grammar parser) after merging.

def known_stages(repo: MLRepo) -> set[str]:
    """Stages a baseline may name: ``[registry] stages`` when declared, else the usual
    ones plus every stage some tag already uses."""
    declared = repo.config.section("registry").get("stages")
    if isinstance(declared, list) and declared:
        return {str(s) for s in declared}
    seen = {t.split("#")[1] for t in repo.git.tags("*#*") if t.count("#") >= 1 and t.split("#")[1]}
    return set(DEFAULT_STAGES) | seen


def resolve_baseline(repo: MLRepo, spec: ModelSpec, baseline: str | None = None) -> str | None:
    """The commit of the baseline: a stage (``prod``: the version in it now, by GTO's rules,
    unassignments included), a version (``v1.2.0`` -> ``name@v1.2.0``), a registry tag
    (``name#prod``, ``name@v1.2.0``), or any revision.

    None only for a known stage nobody is in (no baseline yet: the regression gate is
    reported as skipped). Anything else that resolves to nothing is a
    :class:`ConfigError`: a typo never silently disables the comparison.
    """
    from gitml.errors import GitMLError
    from gitml.git.registry import stage_commit, version_commit
    from gitml.git.tags import Action, parse

    ref = (baseline or spec.baseline or "").strip()
    if not ref:
        return None
    if "@" not in ref and "#" not in ref:
        if VERSION_RE.match(ref):
            ref = f"{spec.name}@{ref}"
        elif STAGE_RE.match(ref):
            ref = f"{spec.name}#{ref}"
    tag = parse(ref)
    if tag is not None and tag.action is Action.REGISTER and tag.version:
        commit = version_commit(repo.git, tag.name, tag.version)
        if commit is not None:
            return commit
    elif tag is not None and tag.action is Action.ASSIGN and tag.stage:
        commit = stage_commit(repo.git, tag.name, tag.stage)
        if commit is not None:
            return commit
        if tag.stage in known_stages(repo):
            return None  # a stage nobody is in: nothing to regress against yet
    try:
        return repo.git.resolve((baseline or spec.baseline or "").strip())
    except GitMLError:
        pass
    stages = ", ".join(sorted(known_stages(repo)))
    raise ConfigError(f"{spec.key('gates.baseline')}: {baseline or spec.baseline!r} is neither a stage "
                      f"({stages}), a registered version, nor a revision",
                      f"fix the name, or declare the stage under [registry] stages; e.g. "
                      f"baseline = \"prod\", \"v1.0.0\" or \"{spec.name}#prod\"")
