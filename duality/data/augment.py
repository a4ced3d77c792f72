"""On-device augmentations: per-example random keys, vmapped, jit-able.

Running augmentation on the accelerator (as BYOL's reference code does for
colour, blur and solarisation) removes the host-side pipeline that users of
PyTorch SSL code most often find to be the bottleneck. Each view has its own
`ViewSpec`, so the asymmetric blur/solarisation of BYOL and VICReg is two
specs. Images come in as uint8 [B, H, W, C] and leave as normalised float32
[B, size, size, C].

Semantics follow torchvision's, which the official SimCLR/BYOL/VICReg/Barlow
recipes use: RandomResizedCrop (area fraction `crop_scale`, aspect ratio
log-uniform in `crop_ratio`; instead of torchvision's ten rejection tries a
box that does not fit is clipped to the image), horizontal flip, ColorJitter
applied with probability `jitter_p` (multiplicative brightness, contrast,
saturation, additive hue, in that fixed order rather than a random order),
grayscale, Gaussian blur with sigma uniform in `blur_sigma`, solarisation at
0.5. Ops that need colour are skipped for 1-channel images. Two colour ops
follow TensorFlow's definitions (dm-pix) rather than torchvision's: contrast
blends towards each channel's own mean (torchvision: the grayscale mean) and
saturation scales HSV saturation (torchvision: a blend with grayscale).
"""
from __future__ import annotations

import dataclasses
import math

import dm_pix as pix
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class ViewSpec:
    size: int
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0

    def __post_init__(self):
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"ViewSpec: crop_scale {self.crop_scale} must satisfy 0 < lo <= hi <= 1")
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p", "solarize_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ViewSpec: {name}={getattr(self, name)} is not a probability")

    @property
    def blur_kernel(self) -> int:
        """Odd kernel about a tenth of the output size (torchvision recipes: 23 px at 224)."""
        return max(3, int(0.1 * self.size) // 2 * 2 + 1)


def view_spec(d) -> ViewSpec:
    """A ViewSpec from a dict / ConfigDict (tuples may arrive as lists)."""
    d = dict(d)
    for k in ("crop_scale", "crop_ratio", "blur_sigma"):
        if k in d:
            d[k] = tuple(d[k])
    unknown = set(d) - {f.name for f in dataclasses.fields(ViewSpec)}
    if unknown:
        raise ValueError(f"unknown augmentation field(s) {sorted(unknown)}; valid: "
                         f"{[f.name for f in dataclasses.fields(ViewSpec)]}")
    return ViewSpec(**d)


def random_resized_crop(key, img, size: int, scale, ratio):
    """Crop a random box (area fraction in `scale`, aspect in `ratio`) and resize it to size x size."""
    h, w, c = img.shape
    ks, kr, ky, kx = jax.random.split(key, 4)
    area = h * w * jax.random.uniform(ks, (), minval=scale[0], maxval=scale[1])
    aspect = jnp.exp(jax.random.uniform(kr, (), minval=math.log(ratio[0]), maxval=math.log(ratio[1])))
    cw = jnp.clip(jnp.sqrt(area * aspect), 1.0, w)
    ch = jnp.clip(jnp.sqrt(area / aspect), 1.0, h)
    y0 = jax.random.uniform(ky, (), minval=0.0, maxval=h - ch)
    x0 = jax.random.uniform(kx, (), minval=0.0, maxval=w - cw)
    sy, sx = size / ch, size / cw
    return jax.image.scale_and_translate(
        img, (size, size, c), (0, 1), jnp.stack([sy, sx]), jnp.stack([-y0 * sy, -x0 * sx]),
        method="linear", antialias=True)


def _color_jitter(key, img, spec: ViewSpec):
    kb, kc, ks, kh = jax.random.split(key, 4)

    def factor(k, amount):
        return jax.random.uniform(k, (), minval=max(0.0, 1 - amount), maxval=1 + amount)

    if spec.brightness:
        img = jnp.clip(img * factor(kb, spec.brightness), 0, 1)
    if spec.contrast:
        img = jnp.clip(pix.adjust_contrast(img, factor(kc, spec.contrast)), 0, 1)
    if img.shape[-1] == 3:
        if spec.saturation:
            img = jnp.clip(pix.adjust_saturation(img, factor(ks, spec.saturation)), 0, 1)
        if spec.hue:
            img = pix.adjust_hue(img, jax.random.uniform(kh, (), minval=-spec.hue, maxval=spec.hue))
    return img


def _blur(img, sigma, kernel: int):
    """Gaussian blur with reflected borders (torchvision's padding; zero padding darkens the edges).

    dm-pix's separable kernel (exp(-x^2 / 2 sigma^2) over x = -r..r, normalised; along W, then H), written
    as weighted sums of shifted slices rather than pix.gaussian_blur's depthwise convolutions: each image
    has its own sigma, and vmapped per-image convolutions became grouped convolutions that took 78 of a
    1030 ms CPU step (docs/performance.md); slices stay elementwise under vmap. Same values to float32
    round-off (tests/test_pipeline.py).
    """
    r = kernel // 2
    h, w = img.shape[:2]
    x = jnp.arange(-r, r + 1, dtype=jnp.float32)
    taps = jnp.exp(-x ** 2 / (2.0 * sigma ** 2))
    taps = taps / jnp.sum(taps)
    padded = jnp.pad(img, ((r, r), (r, r), (0, 0)), mode="reflect")
    across = sum(taps[j] * padded[:, j:j + w, :] for j in range(2 * r + 1))
    return sum(taps[i] * across[i:i + h, :, :] for i in range(2 * r + 1))


def augment_one(key, img, spec: ViewSpec, crop: bool = True):
    """One image, float in [0, 1], [H, W, C] -> [size, size, C] in [0, 1].

    crop=False: the image was already random-resized-cropped to the view's size
    on the host (tfds_stream.py); every other op of the recipe still runs here.
    """
    k = jax.random.split(key, 10)
    if crop:
        img = random_resized_crop(k[0], img, spec.size, spec.crop_scale, spec.crop_ratio)
        img = jnp.clip(img, 0.0, 1.0)
    elif img.shape[:2] != (spec.size, spec.size):
        raise ValueError(f"augment(crop=False): images are {img.shape[:2]}, the view wants {spec.size}x{spec.size}")

    def maybe(kk, p, fn, x):
        if p == 0.0:
            return x
        return jnp.where(jax.random.uniform(kk) < p, fn(x), x)

    img = maybe(k[1], spec.flip_p, lambda x: x[:, ::-1], img)
    img = maybe(k[2], spec.jitter_p, lambda x: _color_jitter(k[3], x, spec), img)
    if img.shape[-1] == 3:
        img = maybe(k[4], spec.gray_p, lambda x: jnp.broadcast_to(pix.rgb_to_grayscale(x, keep_dims=True), x.shape), img)
    sigma = jax.random.uniform(k[5], (), minval=spec.blur_sigma[0], maxval=spec.blur_sigma[1])
    img = maybe(k[6], spec.blur_p, lambda x: _blur(x, sigma, spec.blur_kernel), img)
    img = maybe(k[7], spec.solarize_p, lambda x: jnp.where(x < 0.5, x, 1.0 - x), img)
    return img


def to_float(images):
    """uint8 [0, 255] -> float32 [0, 1]."""
    return images.astype(jnp.float32) / 255.0


def normalize(images, mean, std):
    return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def augment(key, images, spec: ViewSpec, mean, std, crop: bool = True):
    """A batch of uint8 images -> one augmented, normalised view, float32 [B, size, size, C]."""
    keys = jax.random.split(key, images.shape[0])
    views = jax.vmap(lambda k, x: augment_one(k, x, spec, crop))(keys, to_float(images))
    return normalize(views, mean, std)


def center_view(images, size: int, mean, std):
    """The un-augmented evaluation view: resize to size x size (no-op when sizes match), normalise."""
    x = to_float(images)
    if x.shape[1:3] != (size, size):
        x = jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), "linear", antialias=True)
    return normalize(x, mean, std)


# Presets -------------------------------------------------------------------

def byol_views(size: int) -> tuple[ViewSpec, ViewSpec]:
    """The asymmetric ImageNet recipe of BYOL / VICReg / Barlow Twins."""
    return (ViewSpec(size, blur_p=1.0, solarize_p=0.0), ViewSpec(size, blur_p=0.1, solarize_p=0.2))


def grayscale_small_views(size: int = 28) -> tuple[ViewSpec, ViewSpec]:
    """28x28 grayscale (Fashion-MNIST): no colour ops; milder crops and blur than ImageNet's."""
    common = dict(crop_scale=(0.25, 1.0), jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0,
                  gray_p=0.0, blur_sigma=(0.1, 1.0))
    return (ViewSpec(size, blur_p=0.5, solarize_p=0.0, **common), ViewSpec(size, blur_p=0.1, solarize_p=0.2, **common))
