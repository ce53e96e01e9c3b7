"""Zoo registry tests (torch only; TVM-backed numerics are in test_zoo_relax.py and
tests/relax/test_frontend.py)."""

import subprocess
import sys

import pytest
import torch

from tvm_sched import zoo
from tvm_sched.zoo import bert, darts, hrnet

ALL = ["inception", "resnet", "transformer", "randwire", "nasnet", "unet", "densenet", "darts",
       "hrnet", "bert"]

# The small graphs are frozen (tests elsewhere rely on them): parameters and input shapes at
# seed 0. The first seven are the zoo's models as they were before sizes existed.
SMALL = {
    "inception": (7426, (1, 3, 32, 32)),
    "resnet": (44370, (1, 3, 32, 32)),
    "transformer": (19466, (1, 16)),
    "randwire": (9827, (1, 3, 32, 32)),
    "nasnet": (5362, (1, 3, 32, 32)),
    "unet": (29634, (1, 3, 32, 32)),
    "densenet": (12106, (1, 3, 32, 32)),
    "darts": (2858, (1, 3, 16, 16)),
    "hrnet": (13538, (1, 3, 32, 32)),
    "bert": (21410, (1, 16)),
}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _outputs(out) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def test_names():
    assert zoo.names() == ALL
    assert zoo.SIZES == ("small", "bench")


def test_unknown_model_raises_value_error():
    with pytest.raises(ValueError, match="inception"):
        zoo.torch_model("nope")
    with pytest.raises(ValueError, match="known"):
        zoo.load("nope")


def test_unknown_size_raises_value_error_naming_the_choices():
    with pytest.raises(ValueError, match="'huge'.*small, bench"):
        zoo.torch_model("resnet", size="huge")
    with pytest.raises(ValueError, match="small, bench"):
        zoo.load("resnet", size="huge")


def test_same_seed_same_weights_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    a, args_a = zoo.torch_model("randwire", seed=3)
    b, args_b = zoo.torch_model("randwire", seed=3)
    c, _ = zoo.torch_model("randwire", seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (_, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y)
    assert torch.equal(args_a[0], args_b[0])
    assert any(
        not torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=False)
        if x.shape == y.shape
    )


@pytest.mark.parametrize("name", ALL)
def test_small_is_the_default_and_frozen(name):
    model, args = zoo.torch_model(name)
    explicit, explicit_args = zoo.torch_model(name, size="small")
    params, shape = SMALL[name]
    assert _params(model) == params
    assert tuple(args[0].shape) == shape
    for x, y in zip(model.state_dict().values(), explicit.state_dict().values(), strict=True):
        assert torch.equal(x, y)
    assert torch.equal(args[0], explicit_args[0])


@pytest.mark.parametrize("name", ALL)
def test_torch_forward(name):
    model, args = zoo.torch_model(name)
    with torch.no_grad():
        outs = _outputs(model(*args))
    for out in outs:
        assert out.shape[0] == 1
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_bench_is_larger_and_runs(name):
    small, small_args = zoo.torch_model(name)
    model, args = zoo.torch_model(name, seed=1, size="bench")
    assert _params(model) > _params(small)
    assert args[0].numel() > small_args[0].numel()
    with torch.no_grad():
        outs = _outputs(model(*args))
    with torch.no_grad():
        small_outs = _outputs(small(*small_args))
    assert len(outs) == len(small_outs)
    # same kind of output (UNet's is a map, BERT's first one a sequence)
    assert outs[-1].shape[:2] == small_outs[-1].shape[:2]
    assert all(torch.isfinite(out).all() for out in outs)


def test_darts_cells_follow_the_genotype():
    model = darts.DARTS(c=4, cells=5)
    reductions = [any(isinstance(op, torch.nn.MaxPool2d) for op in cell.ops)
                  for cell in model.cells]
    assert reductions == [False, True, False, True, False]
    # a cell after a reduction brings its older input down by a factorized reduction
    assert isinstance(model.cells[2].pre0, darts.FactorizedReduce)
    assert model.cells[-1].out_channels == 4 * 16
    x = torch.randn(1, 3, 16, 16)
    s = model.stem(x)
    with torch.no_grad():
        y = model.cells[1](s, model.cells[0](s, s))
    assert y.shape == (1, 4 * 8, 8, 8)  # channels doubled, resolution halved
    normal_ops = [kind for kind, _ in darts.NORMAL]
    assert normal_ops.count("sep3") == 5 and normal_ops.count("dil3") == 1


def test_darts_needs_three_cells():
    with pytest.raises(ValueError, match="at least 3 cells"):
        darts.DARTS(cells=2)


def test_hrnet_branches_and_fusion_shapes():
    model = hrnet.HRNet(width=4, modules=(1, 2, 1), blocks=1)
    assert [len(stage[0].branches) for stage in model.stages] == [2, 3, 4]
    assert len(model.stages[1]) == 2
    xs = [torch.randn(1, 4 * 2**r, 16 // 2**r, 16 // 2**r) for r in range(3)]
    with torch.no_grad():
        ys = model.stages[1][0](xs)
    assert [tuple(y.shape) for y in ys] == [tuple(x.shape) for x in xs]
    assert all(bool((y >= 0).all()) for y in ys)  # every fused output ends with a ReLU


@pytest.mark.parametrize("size", ["small", "bench"])
def test_bert_inputs_are_valid_ids_types_and_a_padding_mask(size):
    model, (ids, types, mask) = zoo.torch_model("bert", size=size)
    again = zoo.torch_model("bert", size=size)[1]
    assert all(torch.equal(a, b) for a, b in zip((ids, types, mask), again, strict=True))
    for x in (ids, types, mask):
        assert x.dtype == torch.int64 and x.shape == ids.shape
    assert 0 <= int(ids.min()) and int(ids.max()) < model.word.num_embeddings
    assert set(types.unique().tolist()) == {0, 1}  # two segments
    assert set(mask.unique().tolist()) == {0, 1}
    n = int(mask.sum())
    assert n < mask.shape[1] and bool((mask[0, :n] == 1).all())  # tokens, then padding
    assert bool((ids[0, n:] == 0).all()) and bool((types[0, n:] == 0).all())
    assert model.position.num_embeddings >= ids.shape[1]


def test_bert_mask_hides_the_padding():
    model, (ids, types, mask) = zoo.torch_model("bert")
    n = int(mask.sum())
    other = ids.clone()
    other[0, n:] = torch.arange(1, ids.shape[1] - n + 1)  # other tokens where the padding is
    with torch.no_grad():
        seq, logits = model(ids, types, mask)
        seq2, logits2 = model(other, types, mask)
        seq3, logits3 = model(other, types, torch.ones_like(mask))
    # padded keys get -1e4 before the softmax: real tokens do not see what is in the padding
    torch.testing.assert_close(seq2[:, :n], seq[:, :n], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(logits2, logits, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(logits3, logits, atol=1e-4)  # unmasked, they do
    assert seq.shape == (1, ids.shape[1], 32) and logits.shape == (1, 2)


def test_bert_rejects_a_hidden_size_the_heads_do_not_divide():
    with pytest.raises(ValueError, match="not a multiple of 5 heads"):
        bert.BERT(d=32, heads=5)
    with pytest.raises(ValueError, match="pad must be"):
        bert.bert_inputs(8, 10, pad=8)


def test_import_zoo_does_not_import_tvm():
    code = "import sys, tvm_sched.zoo; print('tvm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
