"""Encoders and heads: shapes, exact parameter counts, stems, zero-init, bf16."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from duality import models
from duality.models.ssl_model import param_count


def _count(module, shape):
    return param_count(jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape), train=False))["params"])


@pytest.mark.parametrize("fn,stem,expected", [
    (models.resnet18, "imagenet", 11_176_512),  # torchvision resnet18 without its fc layer
    (models.resnet18, "cifar", 11_176_512 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64),
    (models.resnet34, "imagenet", 21_284_672),
    (models.resnet50, "imagenet", 23_508_032),
])
def test_resnet_parameter_counts_match_torchvision(fn, stem, expected):
    assert _count(fn(stem=stem), (1, 32, 32, 3)) == expected


def _output_shape(m, x):
    """The shape of m's output on x, traced (shapes only, nothing computed)."""
    return jax.eval_shape(lambda: m.apply(m.init(jax.random.key(0), x, train=False), x, train=False)).shape


def test_stems_and_output_dims():
    x = jnp.ones((2, 32, 32, 3))
    for stem in ("imagenet", "cifar"):
        assert _output_shape(models.resnet18(stem=stem), x) == (2, 512)
    assert _output_shape(models.resnet50(stem="cifar"), x) == (2, 2048)
    with pytest.raises(ValueError, match="unknown stem"):
        models.resnet18(stem="vit").init(jax.random.key(0), x, train=False)


def test_zero_init_residual_makes_blocks_identity_at_init():
    v = models.resnet18(stem="cifar", zero_init_residual=True).init(jax.random.key(0), jnp.ones((1, 8, 8, 3)), train=False)
    scales = [np.asarray(p["BatchNorm_1"]["scale"]) for k, p in v["params"].items() if k.startswith("BasicBlock")]
    assert len(scales) == 8 and all((s == 0).all() for s in scales)
    v = models.resnet18(stem="cifar", zero_init_residual=False).init(jax.random.key(0), jnp.ones((1, 8, 8, 3)), train=False)
    assert (np.asarray(v["params"]["BasicBlock_0"]["BatchNorm_1"]["scale"]) == 1).all()


def test_projector_spec_and_ssl_outputs():
    assert models.parse_spec("8192-8192-256") == (8192, 8192, 256)
    with pytest.raises(ValueError, match="widths joined by"):
        models.parse_spec("8192x256")
    cfg = ml_collections.ConfigDict(dict(encoder="small", widths=(8, 16), projector="32-32-8"))
    heads = {"pred": lambda: models.MLP((16, 8)), "prototypes": lambda: models.Prototypes(5),
             "dino_head": lambda: models.NormalizedLinear(7)}
    m = models.build(cfg, heads=heads)
    v = m.init(jax.random.key(0), jnp.zeros((3, 28, 28, 1)), train=False)
    out = m.apply(v, jnp.ones((3, 28, 28, 1)), train=False)
    assert out["h"].shape == (3, 32) and out["z"].shape == (3, 8) and out["pred"].shape == (3, 8)
    assert out["dino_head"].shape == (3, 7) and v["params"]["prototypes"]["w"].shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(out["prototypes"], axis=1), 1.0, rtol=1e-5)  # born on the sphere
    assert np.all(np.abs(np.asarray(out["dino_head"])) <= 1.0 + 1e-6)  # cosines
    # the last projector layer has no bias and no BatchNorm
    last = v["params"]["proj"]["Dense_2"]
    assert "bias" not in last and "BatchNorm_2" not in v["params"]["proj"]


def test_bfloat16_compute_keeps_float32_parameters_and_outputs():
    cfg = ml_collections.ConfigDict(dict(encoder="small", widths=(8, 16), projector="32-8", dtype="bfloat16"))
    m = models.build(cfg)
    v = m.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)), train=False)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(v["params"]))
    out = m.apply(v, jnp.ones((2, 28, 28, 1)), train=False)
    assert out["z"].dtype == jnp.float32
    with pytest.raises(ValueError, match="model.dtype"):
        models.build(ml_collections.ConfigDict(dict(encoder="small", projector="8", dtype="fp16")))
