"""Whether the benchmark data is present, for tests that read it (one copy for every test file).

Examples
--------
>>> have_data("stg", "50")
True
"""

from __future__ import annotations

__all__ = ["have_data", "needs_data"]


def have_data(*parts: str) -> bool:
    """Whether ``<data root>/<parts...>`` is a folder (``False`` when there is no data root)."""
    from tvm_sched.datasets.paths import data_root

    try:
        return data_root().joinpath(*parts).is_dir()
    except FileNotFoundError:
        return False


def needs_data(*parts: str):
    """A pytest mark that skips a test when ``<data root>/<parts...>`` is missing."""
    import pytest

    where = "/".join(parts)
    return pytest.mark.skipif(not have_data(*parts), reason=f"benchmark data {where}/ not found")
