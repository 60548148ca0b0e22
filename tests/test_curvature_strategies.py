"""Curvature structures declare their capabilities; the engine asks them (issue 21)."""

import ast
import copy
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sklearn_ssse import ErasableLogisticRegression, ErasableMultiOutputClassifier
from sklearn_ssse._curvature import BlockDiagonalInverse, CurvatureInverse
from sklearn_ssse._curvature_cg import ConjugateGradientCurvature, RowCurvature
from sklearn_ssse._curvature_lowrank import LowRankUpdatedInverse
from sklearn_ssse._curvature_structures import STRUCTURES
from sklearn_ssse._stacked import InverseStack, StackedBlockInverse
from sklearn_ssse.base import _folded
from sklearn_ssse.curvature_registry import (
    CAPABILITIES,
    REGISTRY,
    describe,
    registered,
)

PACKAGE = Path(__file__).resolve().parents[1] / "sklearn_ssse"


def _data(n=150, d=30, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.integers(n_classes, size=n)
    X[np.arange(n), y] += 1.5  # separable enough to converge quickly
    return X, y


def _old_folded(curvature):
    """``base._folded`` before issue 21: type tests instead of ``folded()``."""
    if isinstance(curvature, LowRankUpdatedInverse):
        return curvature.compacted() if any(curvature.rank) else curvature
    if isinstance(curvature, StackedBlockInverse):
        return curvature._plain() if curvature.stack.rank else curvature
    if isinstance(curvature, RowCurvature):
        return curvature.compacted()
    return curvature


# -- declared capabilities ------------------------------------------------------------
EXPECTED = {
    BlockDiagonalInverse: dict(
        downdate_by="factors", keeps_rows=False, supports_l1=True, lazy=False
    ),
    LowRankUpdatedInverse: dict(
        downdate_by="factors", keeps_rows=False, supports_l1=True, lazy=True
    ),
    StackedBlockInverse: dict(
        downdate_by="factors", keeps_rows=False, supports_l1=True, lazy=True
    ),
    ConjugateGradientCurvature: dict(
        downdate_by="rows", keeps_rows=False, supports_l1=False, lazy=False
    ),
    RowCurvature: dict(
        downdate_by="rows", keeps_rows=True, supports_l1=False, lazy=True
    ),
}


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_each_class_declares_its_capabilities(cls):
    for key, value in EXPECTED[cls].items():
        assert getattr(cls, key) == value, key
    for key in CAPABILITIES:  # every capability is answered
        assert hasattr(cls, key)
    assert cls.curvatures <= {"hessian", "fisher"}
    assert cls.folded is not CurvatureInverse.folded or not cls.lazy


def test_the_abstract_base_has_conservative_defaults():
    assert CurvatureInverse.structure is None
    assert CurvatureInverse.exact is False
    assert CurvatureInverse.keeps_rows is False
    assert CurvatureInverse.lazy is False
    assert CurvatureInverse.downdate_by == "factors"


# -- the registry -------------------------------------------------------------------
def test_every_structure_name_is_registered():
    assert set(registered()) == set(STRUCTURES) - {"auto"}
    for name in registered():
        entry = describe(name)
        assert entry.name == name
        assert set(entry.capabilities) == set(CAPABILITIES)
        assert callable(entry.resolve("estimate"))
        assert callable(entry.resolve("build"))
    assert [n for n in registered() if not describe(n).auto] == ["cg-rows"]
    with pytest.raises(KeyError, match="registered"):
        describe("auto")


def test_registry_declarations_are_the_classes():
    for name, entry in REGISTRY.items():
        for key, value in entry.capabilities.items():
            declared = getattr(entry.cls, key)
            if key in ("exact", "structure") or isinstance(declared, property):
                continue  # stated by the entry, answered per object
            assert value == declared, (name, key)
        for variant in entry.variants:  # what requests may publish
            assert issubclass(variant, entry.cls)
            assert variant.downdate_by == entry.capabilities["downdate_by"]


def _check_reports(curvature, entry):
    assert isinstance(curvature, (entry.cls, *entry.variants))
    assert curvature.structure == entry.name
    variant = type(curvature) is not entry.cls
    for key, value in entry.capabilities.items():
        if value is None or (variant and key in ("lazy", "array_api")):
            continue  # None: per object; a variant's own (NumPy, lazy)
        assert getattr(curvature, key) == value, (entry.name, key)
    if entry.capabilities["exact"] is None:  # "blocks": exact with one block
        assert curvature.exact == (len(curvature.bounds) == 1)


@pytest.mark.parametrize("name", [n for n in STRUCTURES if n != "auto"])
def test_built_objects_report_the_registered_capabilities(name):
    X, y = _data()
    entry = describe(name)
    model = ErasableLogisticRegression(curvature_structure=name).fit(X, y)
    assert model.curvature_structure_ == name
    _check_reports(model.erasure_state_.curvature, entry)
    model.partial_forget(X[:2], y[:2])  # "blocks" publishes its lazy variant
    _check_reports(model.erasure_state_.curvature, entry)
    if name == "blocks":
        assert type(model.erasure_state_.curvature) is LowRankUpdatedInverse
        by_class = ErasableLogisticRegression(block_size="class").fit(X, y)
        assert by_class.erasure_state_.curvature.exact is False


@pytest.mark.parametrize("name", [n for n in STRUCTURES if n != "auto"])
def test_declared_curvatures_fit(name):
    X, y = _data(n=80, d=6)
    for kind in describe(name).capabilities["curvatures"]:
        model = ErasableLogisticRegression(curvature=kind, curvature_structure=name)
        model.fit(X, y).partial_forget(X[:1], y[:1])


@pytest.mark.parametrize("name", [n for n in STRUCTURES if n != "auto"])
def test_declared_l1_support(name):
    X, y = _data(n=80, d=6, n_classes=2)
    model = ErasableLogisticRegression(
        solver="saga", l1_ratio=1.0, C=0.5, curvature_structure=name, max_iter=2000
    )
    if describe(name).capabilities["supports_l1"]:
        model.fit(X, y).partial_forget(X[:1], y[:1])
    else:
        with pytest.raises(ValueError, match="L1"):
            model.fit(X, y)


def test_auto_builds_a_registered_structure():
    X, y = _data()
    model = ErasableLogisticRegression(curvature_structure="auto").fit(X, y)
    entry = describe(model.curvature_structure_)
    assert entry.auto
    _check_reports(model.erasure_state_.curvature, entry)


# -- folded() is the old isinstance chain ------------------------------------------
def _same_inverse(new, old):
    assert type(new) is type(old)
    assert_allclose(new.to_dense(), old.to_dense())


def _lazy_block(rank):
    rng = np.random.default_rng(0)
    G = rng.normal(size=(300, 96))
    inverse = BlockDiagonalInverse.from_blocks([(0, 96)], [G.T @ G + np.eye(96)])
    for _ in range(rank):
        inverse = inverse.downdated(factors=[rng.normal(size=(96, 1)) * 0.1])
    return inverse


def test_folded_matches_the_old_behaviour_on_every_representation():
    lazy = _lazy_block(2)
    assert type(lazy) is LowRankUpdatedInverse and any(lazy.rank)
    rank0 = LowRankUpdatedInverse(lazy.bounds, lazy.bases, [None])
    stack = InverseStack.from_inverses([lazy.bases[0], lazy.bases[0]])
    U = np.random.default_rng(1).normal(size=(2, 96, 1)) * 0.1
    pending, _, _ = stack.downdated_and_applied(U, np.ones((2, 96)), limit=50)
    assert pending.rank
    plain = BlockDiagonalInverse([(0, 96)], [lazy.bases[0]])
    for curvature in [
        plain,
        lazy,
        rank0,
        StackedBlockInverse(stack, 1),
        StackedBlockInverse(pending, 1),
    ]:
        old, new = _old_folded(curvature), curvature.folded()
        assert (new is curvature) == (old is curvature)
        _same_inverse(new, old)
        assert _folded(curvature) is new or type(_folded(curvature)) is type(new)


def test_folded_rebuilds_a_stale_row_preconditioner():
    X, y = _data(n=120, d=10)
    model = ErasableLogisticRegression(curvature_structure="cg-rows").fit(X, y)
    fresh = model.erasure_state_.curvature
    assert fresh.folded() is fresh is _old_folded(fresh)
    model.partial_forget(X[:3], y[:3])
    stale = model.erasure_state_.curvature
    assert stale._stale_preconditioner
    folded = stale.folded()
    assert folded is not stale and not folded._stale_preconditioner
    assert not _old_folded(stale)._stale_preconditioner
    for name in ("blocks", "kronecker"):
        a, b = getattr(folded, name), getattr(_old_folded(stale), name)
        if a is None:
            assert b is None
        else:
            for x, z in zip(np.atleast_1d(a), np.atleast_1d(b)):
                assert_allclose(np.asarray(x), np.asarray(z))
    cg = ErasableLogisticRegression(curvature_structure="cg").fit(X, y)
    assert cg.erasure_state_.curvature.folded() is cg.erasure_state_.curvature


def test_pickles_copies_and_compaction_still_fold():
    X, y = _data()
    model = ErasableLogisticRegression().fit(X, y).partial_forget(X[:2], y[:2])
    lazy = model.erasure_state_.curvature
    assert lazy.lazy and any(lazy.rank)
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        held = other.erasure_state_.curvature
        assert type(held) is BlockDiagonalInverse
        assert_allclose(held.to_dense(), lazy.to_dense())
    model.compact_erasure_state()
    assert type(model.erasure_state_.curvature) is BlockDiagonalInverse
    assert_allclose(model.erasure_state_.curvature.to_dense(), lazy.to_dense())


def test_multioutput_batched_path_still_recognises_its_blocks():
    X, _ = _data(n=120, d=70)
    rng = np.random.default_rng(3)
    Y = (X[:, :3] + rng.normal(size=(120, 3)) > 0).astype(int)
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    inverses = [e.erasure_state_.curvature for e in model.estimators_]
    assert all(type(c) is StackedBlockInverse for c in inverses)
    model.partial_forget(X[:1], Y[:1])
    after = [e.erasure_state_.curvature for e in model.estimators_]
    # the batched path: every output a slice of one new (lazy) stack
    assert len({id(c.stack) for c in after}) == 1
    assert after[0].stack is not inverses[0].stack


# -- no import circle ----------------------------------------------------------------
FAMILY = ("_curvature", "_curvature_lowrank", "_stacked", "_curvature_cg")


def _sibling_imports(module):
    """Every ``sklearn_ssse`` module ``module`` imports, at any depth of its code."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "sklearn_ssse."
        ):
            found.add(node.module.split(".")[1])
    return found


def test_no_import_circle_among_the_structures():
    graph = {m: _sibling_imports(m) & set(FAMILY) for m in FAMILY}
    assert graph["_curvature"] == set()  # the interface imports no structure
    state = {}

    def visit(m, path):
        state[m] = "open"
        for n in graph[m]:
            assert state.get(n) != "open", f"import circle: {path + [n]}"
            if n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in FAMILY:
        if m not in state:
            visit(m, [m])
    registry = _sibling_imports("curvature_registry")
    assert set(FAMILY) <= registry and "base" not in registry


def test_the_interface_works_with_the_lazy_module_blocked():
    """``_curvature`` imported alone (no package ``__init__``, the low-rank module
    unimportable): its downdates are then eager, and correct."""
    code = f"""
import importlib.abc, sys, types
import numpy as np

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "sklearn_ssse._curvature_lowrank":
            raise ImportError("blocked")
        return None

sys.meta_path.insert(0, Block())
package = types.ModuleType("sklearn_ssse")
package.__path__ = [{str(PACKAGE)!r}]
sys.modules["sklearn_ssse"] = package
from sklearn_ssse._curvature import BlockDiagonalInverse
assert "sklearn_ssse._curvature_lowrank" not in sys.modules
rng = np.random.default_rng(0)
G = rng.normal(size=(300, 96))
M = G.T @ G + np.eye(96)
U = rng.normal(size=(96, 2)) * 0.1
new = BlockDiagonalInverse.from_blocks([(0, 96)], [M.copy()]).downdated(factors=[U])
assert type(new) is BlockDiagonalInverse
assert np.allclose(new.to_dense(), np.linalg.inv(M - U @ U.T))
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_the_package_registers_the_lazy_representation():
    assert BlockDiagonalInverse.lazy_representation is LowRankUpdatedInverse
    assert _lazy_block(1).lazy
