"""The parsing and attribution the profiling benchmarks' figures rest on (docs/performance.md)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import ab_step  # noqa: E402
import flops  # noqa: E402
import nt_product  # noqa: E402
import onednn_share  # noqa: E402
import profile_step  # noqa: E402


def test_a_convolution_counts_as_one_whatever_its_module_is_called():
    # ResNet's 1x1 shortcut is a module named "proj" inside the backbone: before, its custom calls were
    # attributed to BatchNorm by their source path
    path = "jit(_per_device)/transpose(jvp(SSLModel))/backbone/BasicBlock_2/proj/ffi_call"
    call = ('(f32[256,14,14,128]{3,2,1,0}, u8[45056]{0}) custom-call(%a, %b), '
            'custom_call_target="duality_onednn_conv_bwd_data"')
    assert profile_step.part_of(path, call) == "conv backward"
    assert profile_step.part_of(path.replace("transpose(jvp(SSLModel))", "SSLModel"),
                                call.replace("bwd_data", "fwd")) == "conv forward"
    assert profile_step.part_of(path.replace("proj/ffi_call", "BatchNorm_0/mul"),
                                "f32[256,14,14,128] fusion(%x)") == "encoder BatchNorm + ReLU backward"
    # oneDNN's BatchNorm (+ ReLU) calls, forward and backward, by their targets
    bn = '(f32[256,14,14,128]{3,2,1,0}, u8[8]{0}) custom-call(%a), custom_call_target="duality_onednn_bn_fwd"'
    assert profile_step.part_of(path.replace("proj", "BatchNorm_0"), bn) == "encoder BatchNorm + ReLU forward"
    assert profile_step.part_of(path, bn.replace("bn_fwd", "bn_bwd")) == "encoder BatchNorm + ReLU backward"


def test_time_outside_convolutions_is_shared_and_adds_up():
    spans = [(0, 4, "conv forward"), (2, 6, "encoder BatchNorm + ReLU forward"),  # 2 hidden, 2 alone
             (5, 7, "loss"),                                                     # 5-6 shared with BN
             (9, 10, "loss"), (9, 10, "optimiser"),                              # 8..9 idle, then shared
             (3, 3.5, "loss")]                                                   # under the conv: hidden
    alone, idle = profile_step._time_outside_convolutions(spans)
    assert alone == {"encoder BatchNorm + ReLU forward": 1.5, "loss": 2.0, "optimiser": 0.5}
    assert idle == 2  # 7..9
    assert sum(alone.values()) + idle == 10 - 4  # the wall time outside convolutions


def test_op_spans_end_asynchronous_ops_at_their_completion_events():
    def x(name, ts, dur):
        return {"ph": "X", "name": name, "ts": ts, "dur": dur}

    events = [x("dot.8", 0, 0.2), x("end: dot.8", 9.5, 0.5),    # launched at 0, done at 10
              x("dot.8", 20, 0.2), x("end: dot.8", 31, 1),      # the next step's launch: done at 32
              x("fusion.1", 10, 2),                              # synchronous: its own event
              x("end: copy.3", 5, 1),                            # an op not asked for
              x("dot.9", 40, 0.3)]                               # no completion recorded: the launch alone
    spans = sorted(profile_step.op_spans(events, {"dot.8", "fusion.1", "dot.9"}))
    assert spans == [(0, 10, "dot.8"), (10, 12, "fusion.1"), (20, 32, "dot.8"), (40, 40.3, "dot.9")]
    events.append(x("end: fusion.1", 30, 1))  # a fusion's completion, late: used only when asked for
    assert (10, 31, "fusion.1") in profile_step.op_spans(events, {"fusion.1"})
    assert (10, 12, "fusion.1") in profile_step.op_spans(events, {"dot.8", "fusion.1"}, {"dot.8"})


def test_onednn_share_sums_each_step_between_markers():
    lines = [
        "onednn_verbose,v1,info,oneDNN v3.2.0",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv:avx512_core,forward_training,x,y,z,9.5",  # warm-up
        f"{onednn_share.STEP} start",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv:avx512_core,forward_training,x,y,z,10.0",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx512_core,backward_weights,x,y,z,20.5",
        "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,x,y,z,1.0",
        f"{onednn_share.STEP} 0.050",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv:avx512_core,forward_training,x,y,z,12.0",
        f"{onednn_share.STEP} 0.060",
    ]
    steps = onednn_share.parse(lines)
    assert [s["wall"] for s in steps] == [0.05, 0.06]
    assert sum(steps[0]["ms"].values()) == 31.5
    assert steps[0]["ms"][("convolution", "jit:avx512_core", "backward_weights")] == 20.5
    assert sum(steps[1]["ms"].values()) == 12.0
    assert onednn_share.part("convolution", "backward_data") == "convolution input gradient"
    assert onednn_share.part("batch_normalization", "backward") == "BatchNorm (+ ReLU) backward"
    assert onednn_share.part("batch_normalization", "forward_training") == "BatchNorm (+ ReLU) forward"


def test_ab_step_variants_parse_fields_and_environment(monkeypatch):
    assert ab_step.parse_variant("") == ({}, {})
    fields, env = ab_step.parse_variant("model.norm_impl=xla, optim.lr=0.5,train.steps=3,x.flag=True,env:DUALITY_ONEDNN=0")
    assert fields == {"model.norm_impl": "xla", "optim.lr": 0.5, "train.steps": 3, "x.flag": True}
    assert env == {"DUALITY_ONEDNN": "0"}
    for bad in ("model.norm_impl", "=3", "env:X"):
        try:
            ab_step.parse_variant(bad)
        except ValueError as e:
            assert repr(bad.split(",")[0]) in str(e)
        else:
            raise AssertionError(f"{bad!r} parsed")
    monkeypatch.setenv("AB_KEEP", "1")
    monkeypatch.delenv("AB_NEW", raising=False)
    with ab_step.environment({"AB_KEEP": "2", "AB_NEW": "3"}):
        assert os.environ["AB_KEEP"] == "2" and os.environ["AB_NEW"] == "3"
    assert os.environ["AB_KEEP"] == "1" and "AB_NEW" not in os.environ


def test_nt_product_shapes_parse_and_name_the_bad_item():
    assert nt_product.parse_shapes("256x2048x2048, 4X5X6") == [(256, 2048, 2048), (4, 5, 6)]
    for bad in ("256x2048", "0x1x2", "axbxc"):
        try:
            nt_product.parse_shapes(f"2x3x4,{bad}")
        except ValueError as e:
            assert repr(bad) in str(e)
        else:
            raise AssertionError(f"{bad!r} parsed")


def test_flops_count_the_convolutions_that_onednn_hides_from_xla():
    # A step whose convolutions are oneDNN's custom calls reads as almost no work to XLA's cost analysis;
    # flops.with_xla_ops builds the same model with XLA's ops, whose count is the textbook one.
    import jax
    import jax.numpy as jnp
    import pytest

    from configs import base
    from duality import models
    from duality.models import onednn
    from duality.models.conv import conv

    def grad_of(model, x):
        variables = model.init(jax.random.key(0), x)
        f = jax.jit(jax.grad(lambda v, x: jnp.sum(jax.tree.leaves(model.apply(v, x, mutable=True)[0])[0] ** 2),
                             argnums=(0, 1)))
        return f.lower(variables, x).compile()

    n, hw, cin, cout = 8, 12, 16, 32
    layer = grad_of(conv(cout, (3, 3), padding=1, backward="xla"), jnp.ones((n, hw, hw, cin)))
    taps = (3 * hw - 2) ** 2  # kernel taps over an image's outputs that land inside it (XLA skips the padding)
    macs = n * taps * cin * cout  # per pass; forward, input gradient and weight gradient make three
    assert 3 * 2 * macs <= flops.compiled_flops(layer) <= 1.05 * 3 * 2 * macs

    cfg = base.get_config("fashion_mnist")
    cfg.model.encoder, cfg.model.widths, cfg.model.projector = "small", (8, 16, 16, 16), "32-32"
    xla_cfg = flops.with_xla_ops(cfg)
    assert "conv_backward" not in cfg.model  # a copy: the run's own config is untouched
    x = jnp.ones((4, 28, 28, 1))
    counted = grad_of(models.build(xla_cfg.model), x)
    assert not flops.has_opaque_calls(counted)
    if not onednn.available():
        pytest.skip(f"oneDNN's convolutions are not available here: {onednn.why_not()}")
    hidden = grad_of(models.build(cfg.model), x)
    assert flops.has_opaque_calls(hidden)
    assert flops.compiled_flops(hidden) < 0.5 * flops.compiled_flops(counted)


def test_onednn_share_counts_each_resnet18_layer_as_often_as_the_model_runs_it():
    # step_floor's multiplicities against the 3x3 convolutions a ResNet-18 (CIFAR stem) forward pass calls
    import collections

    import jax
    import jax.numpy as jnp

    from conv_vs_pytorch import RESNET18
    from duality.models.resnet import resnet

    model = resnet("resnet18", stem="cifar", conv_backward="xla")
    x = jnp.ones((2, 28, 28, 1))
    variables = model.init(jax.random.key(0), x, True)
    jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, True, mutable=["batch_stats"]))(variables, x)
    seen = collections.Counter()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            lhs, rhs = (v.aval.shape for v in eqn.invars)
            if rhs[:2] == (3, 3):
                seen[(lhs[1:], rhs[3], eqn.params["window_strides"][0])] += 1
    want = {((h, w, c), o, s): onednn_share.PER_VIEW[name] for name, _, (h, w, c), o, s in RESNET18}
    assert seen == want
    rows = {name: (1.0, 10.0, 100.0) for name in onednn_share.PER_VIEW}
    fwd, data, weights = onednn_share.step_floor(rows)
    n = sum(onednn_share.PER_VIEW.values())
    assert (fwd, data, weights) == (2 * n, 20 * (n - 1), 200 * n)
