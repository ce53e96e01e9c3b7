"""What the profiler runs kernels on: a model's real inputs when given, and otherwise integer
arguments that are valid indices (TVM's ``take`` does not check them)."""

from __future__ import annotations

import numpy as np
import pytest

from tvm_sched import zoo
from tvm_sched.relax.frontend import prepare
from tvm_sched.relax.profile import profile_kernels, random_args

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bert():
    imported = zoo.load("bert")
    return imported, prepare(imported.mod)


def test_random_integer_inputs_index_every_embedding_table(bert):
    imported, mod = bert
    main = mod["main"]
    args = random_args(main, np.random.default_rng(0))
    by_name = {p.name: a for p, a in zip(main.params, args, strict=True)}
    # the token types index a two-row table, the ids a 64-row one; the mask is 0 or 1
    rows = {"input_ids": 64, "token_type_ids": 2, "attention_mask": 2}
    for name, n in rows.items():
        x = by_name[name]
        assert x.dtype == np.int64 and 0 <= x.min() and x.max() < n, name
    floats = [a for a in args if a.dtype == np.float32]
    assert floats and all(np.isfinite(a).all() and a.std() > 0.5 for a in floats)


def test_profile_runs_the_given_inputs_and_names_too_many(bert):
    imported, mod = bert
    times = profile_kernels(mod, inputs=imported.inputs, repeat=1)
    takes = [k for k in times if k.startswith("take")]
    assert len(takes) == 3 and all(times[k] > 0 for k in takes)
    params = len(mod["main"].params)
    with pytest.raises(ValueError, match=f"{params + 1} inputs given; it takes {params}"):
        profile_kernels(mod, inputs=[imported.inputs[0]] * (params + 1))
