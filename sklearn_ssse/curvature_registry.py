"""The curvature structures: one entry per ``curvature_structure`` name.

Each entry names the class that stores the curvature, what it declares it can do
(its capability attributes, :class:`~sklearn_ssse._curvature.CurvatureInverse`),
the other classes a state of that structure may hold after requests, and where its
memory estimate and its builder live today. Adding a structure is one module (its
class, with its capabilities) and one line in :data:`REGISTRY`. Importing this
module imports every structure's module, which registers the lazy representation
of ``"blocks"`` (docs/curvature.md, "Structures as strategies").
"""

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType

from ._curvature import BlockDiagonalInverse
from ._curvature_cg import ConjugateGradientCurvature, RowCurvature
from ._curvature_lowrank import LowRankUpdatedInverse
from ._stacked import StackedBlockInverse

__all__ = ["CAPABILITIES", "REGISTRY", "StructureEntry", "describe", "registered"]

# The capability attributes every structure answers (CurvatureInverse's docstring).
CAPABILITIES = (
    "structure",
    "exact",
    "downdate_by",
    "keeps_rows",
    "supports_l1",
    "supports_estimates",
    "curvatures",
    "array_api",
    "lazy",
)


@dataclass(frozen=True)
class StructureEntry:
    """What the registry knows of one structure.

    Attributes
    ----------
    name : str
        The ``curvature_structure`` value.
    cls : type
        The class ``fit`` builds.
    exact : bool or None
        Whether the structure stores ``M`` whole; ``None``: it depends on the
        parameters (``"blocks"``: one block, ``block_size=None``). An object
        answers for itself (its ``exact`` attribute).
    estimate : str
        Dotted name of the function that estimates its memory before the build.
    build : str
        Dotted name of the function (or class method) that builds it.
    variants : tuple of type
        Other classes a state of this structure may hold (lazy representations
        published by requests, slices of a multi-output stack).
    auto : bool
        Whether ``curvature_structure="auto"`` may choose it.
    capabilities : mapping
        The class's declared capabilities (:data:`CAPABILITIES`), with ``exact``
        and ``structure`` as the entry states them.
    """

    name: str
    cls: type
    exact: object
    estimate: str
    build: str
    variants: tuple = ()
    auto: bool = True
    capabilities: MappingProxyType = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        declared = {}
        for key in CAPABILITIES:
            value = getattr(self.cls, key)
            if isinstance(value, property):  # answered per object
                value = None
            declared[key] = value
        declared["structure"] = self.name
        declared["exact"] = self.exact
        object.__setattr__(self, "capabilities", MappingProxyType(declared))

    def resolve(self, which):
        """The object ``which`` (``"estimate"`` or ``"build"``) names."""
        module, _, attribute = getattr(self, which).rpartition(".")
        path = []
        while module:
            try:
                target = importlib.import_module(module)
                break
            except ImportError:  # a class method: module.Class.method
                module, _, outer = module.rpartition(".")
                path.insert(0, outer)
        for part in [*path, attribute]:
            target = getattr(target, part)
        return target


_CG = "sklearn_ssse._curvature_structures."

REGISTRY = MappingProxyType(
    {
        entry.name: entry
        for entry in (
            StructureEntry(
                "blocks",
                BlockDiagonalInverse,
                exact=None,
                estimate="sklearn_ssse._memory.estimate_block_diagonal",
                build="sklearn_ssse._curvature.BlockDiagonalInverse.from_blocks",
                variants=(LowRankUpdatedInverse, StackedBlockInverse),
            ),
            StructureEntry(
                "cg",
                ConjugateGradientCurvature,
                exact=True,
                estimate=_CG + "cg_estimate",
                build=_CG + "build_cg_curvature",
            ),
            StructureEntry(
                "cg-class",
                ConjugateGradientCurvature,
                exact=False,
                estimate=_CG + "cg_estimate",
                build=_CG + "build_cg_curvature",
            ),
            StructureEntry(
                "cg-rows",
                RowCurvature,
                exact=True,
                estimate=_CG + "cg_estimate",
                build=_CG + "build_cg_curvature",
                auto=False,
            ),
        )
    }
)


def registered():
    """The registered structure names, in the registry's order.

    Examples
    --------
    >>> from sklearn_ssse.curvature_registry import registered
    >>> registered()
    ('blocks', 'cg', 'cg-class', 'cg-rows')
    """
    return tuple(REGISTRY)


def describe(name):
    """The :class:`StructureEntry` of structure ``name``.

    Raises
    ------
    KeyError
        If ``name`` is not registered (``"auto"`` is a choice among them, not a
        structure).

    Examples
    --------
    >>> from sklearn_ssse.curvature_registry import describe
    >>> entry = describe("cg-rows")
    >>> entry.cls.__name__, entry.capabilities["keeps_rows"]
    ('RowCurvature', True)
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"no curvature structure {name!r}; registered: {', '.join(REGISTRY)}"
        ) from None
