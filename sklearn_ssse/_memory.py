"""Memory budget of the erasure state (stub: issue 11's memory work replaces it)."""

import os

__all__ = ["resolve_budget"]

AUTO_BUDGET_FRACTION = 0.5
FALLBACK_PHYSICAL_BYTES = 8 * 2**30


def resolve_budget(memory_budget="auto"):
    """Bytes allowed by a ``memory_budget`` parameter.

    ``"auto"``: half the physical memory; a number: that many MiB; ``None``: no
    limit (returns ``None``).
    """
    if memory_budget is None:
        return None
    if isinstance(memory_budget, str):
        if memory_budget != "auto":
            raise ValueError(
                f"memory_budget must be 'auto', MiB or None; got {memory_budget!r}"
            )
        try:
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            total = FALLBACK_PHYSICAL_BYTES
        return int(AUTO_BUDGET_FRACTION * total)
    return int(float(memory_budget) * 2**20)
