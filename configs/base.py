"""Shared defaults; every method file starts from `base.get_config(arg)`.

arg picks the data set and scale:
  fashion_mnist  the CPU-sized default (28x28 grayscale, small convnet, 3 epochs)
  cifar10, cifar100  ResNet-18 with the CIFAR stem, 32x32 colour recipe, 1000 epochs
  stl10          ResNet-18 (CIFAR stem) at 96x96, pretraining on the unlabelled split
  imagenette     ResNet-18 (ImageNet stem) at 128x128 from imagenette/160px-v2, 200 epochs
  imagenet       the paper's setting: ResNet-50, 224x224, projector 8192-8192-8192, 100 epochs,
                 batch 1024, bf16 compute; end-of-run probe off (ImageNet's linear evaluation
                 protocol is its own job)
(tfds data sets must be prepared in the tfds data directory; see data/tfds_source.py
and data/tfds_stream.py.)

Projector and predictor specs may contain "{h}", the scale's hidden width
(HIDDEN): method files write "{h}-{h}-256" once and get 1024-wide layers on
the CPU default and the paper's 8192 on ImageNet.
"""
import ml_collections

from duality import methods
from duality.data import augment

SCALES = ("fashion_mnist", "cifar10", "cifar100", "stl10", "imagenette", "imagenet")
HIDDEN = {"fashion_mnist": 1024, "cifar10": 2048, "cifar100": 2048, "stl10": 2048, "imagenette": 2048,
          "imagenet": 8192}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Per-channel statistics of the training images (computed once, as is conventional).
COLOUR = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 10, 32),
          "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 100, 32),
          "stl10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713), 10, 96)}


def _views(specs):
    return [dict(size=s.size, crop_scale=s.crop_scale, crop_ratio=s.crop_ratio, flip_p=s.flip_p,
                 jitter_p=s.jitter_p, brightness=s.brightness, contrast=s.contrast, saturation=s.saturation,
                 hue=s.hue, gray_p=s.gray_p, blur_p=s.blur_p, blur_sigma=s.blur_sigma, solarize_p=s.solarize_p)
            for s in specs]


def get_config(arg: str = "fashion_mnist") -> ml_collections.ConfigDict:
    if arg not in SCALES:
        raise ValueError(f"config argument {arg!r}: choose one of {SCALES}")
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = dict(name="fashion_mnist", data_dir="", image_size=28, channels=1, num_classes=10,
                  global_batch=256, mean=(0.2860,), std=(0.3530,), train_subset=0, probe_subset=0,
                  shuffle_buffer=10_000,
                  views=_views(augment.grayscale_small_views(28)), local_views=0,
                  local_view=_views([augment.ViewSpec(12, crop_scale=(0.1, 0.4), saturation=0.0, hue=0.0,
                                                      gray_p=0.0)])[0])
    c.model = dict(encoder="small", widths=(32, 64, 128, 256), stem="cifar", projector="{h}-{h}-{h}",
                   projector_out_bn=False, zero_init_residual=True, dtype="float32")
    # The method's own block (duality/methods): its name, its loss's hyperparameters, its own fields.
    c.method = methods.get("vicreg").config()
    # LARS as solo-learn's small-batch recipes run it (trust coefficient 0.02, lr clipping: a step moves a
    # weight by at most 2% of its norm); the ImageNet scale below uses the official large-batch 0.001.
    # groups: per top-level module (backbone, proj, pred, ...) base_lr / weight_decay / schedule; see optim.py.
    c.optim = dict(name="lars", base_lr=0.3, weight_decay=1e-6, momentum=0.9, trust_coefficient=0.02, clip_lr=True,
                   schedule="cosine", warmup_steps=100, warmup_epochs=0, final_lr_ratio=0.001, clip_norm=0.0,
                   groups={})
    c.probe = dict(lr=1e-3)  # online linear probe (Adam)
    c.train = dict(epochs=3, steps=0, log_every=20, checkpoint_every=200, keep_checkpoints=3,
                   nonfinite="stop", max_skipped=10)  # see duality/train.py: stop, or skip up to max_skipped
    # End-of-run probe: L-BFGS logistic regression, L2 chosen on held-out train from probe_l2 (or one value).
    # Four decades around what the held-out split picks on Fashion-MNIST (1e-4 for SSL features, 1e-3 for
    # raw pixels and the random encoder); --mode=probe searches probe.L2_GRID's six.
    c.eval = dict(linear_probe=True, baselines=True, probe_l2=(1e-5, 1e-4, 1e-3, 1e-2))
    if arg in COLOUR:
        mean, std, classes, size = COLOUR[arg]
        # Small colour images: the BYOL/VICReg recipe without blur (solo-learn's CIFAR setting).
        views = [augment.ViewSpec(size, blur_p=0.0, solarize_p=0.0), augment.ViewSpec(size, blur_p=0.0, solarize_p=0.2)]
        # Multi-crop (off unless data.local_views > 0): half-size colour crops, DINO's area range.
        local = augment.ViewSpec(size // 2, crop_scale=(0.05, 0.4), blur_p=0.0)
        c.data.update(dict(name=arg, image_size=size, channels=3, num_classes=classes, mean=mean, std=std,
                           views=_views(views), local_view=_views([local])[0]))
        c.model.update(dict(encoder="resnet18", stem="cifar", projector="2048-2048-2048"))
        c.train.update(dict(epochs=1000, log_every=100, checkpoint_every=2000))
        c.optim.update(dict(warmup_steps=0, warmup_epochs=10))
        c.eval.baselines = False
    elif arg in ("imagenette", "imagenet"):
        size = 128 if arg == "imagenette" else 224
        local = augment.ViewSpec(size * 96 // 224, crop_scale=(0.05, 0.14), blur_p=0.5)  # multi-crop, if enabled
        c.data.update(dict(name="imagenette/160px-v2" if arg == "imagenette" else "imagenet2012", image_size=size,
                           channels=3, num_classes=10 if arg == "imagenette" else 1000, mean=IMAGENET_MEAN,
                           std=IMAGENET_STD, views=_views(augment.byol_views(size)), local_view=_views([local])[0]))
        c.model.update(dict(encoder="resnet18" if arg == "imagenette" else "resnet50", stem="imagenet"))
        if arg == "imagenet":
            c.data.global_batch = 1024
            c.optim.update(dict(trust_coefficient=0.001, clip_lr=False))  # official VICReg / BYOL at large batch
            c.model.dtype = "bfloat16"
            c.eval.linear_probe = False
        c.train.update(dict(epochs=200 if arg == "imagenette" else 100, log_every=50, checkpoint_every=1000))
        c.optim.update(dict(warmup_steps=0, warmup_epochs=10))
        c.eval.baselines = False
    c.model.projector = c.model.projector.format(h=HIDDEN[arg])
    return c


def method_config(arg: str, name: str, loss=None, model=None, method=None, optim=None, data=None):
    """base.get_config(arg) with method `name`'s block (its defaults, `loss` and `method` on top) and the
    other blocks' overrides. Strings may contain "{h}", the scale's hidden width."""
    c = get_config(arg)

    def fmt(v):
        return v.format(h=HIDDEN[arg]) if isinstance(v, str) else v

    c.method = methods.get(name).config(loss=loss, **{k: fmt(v) for k, v in (method or {}).items()})
    for block, values in (("model", model), ("optim", optim), ("data", data)):
        for k, v in (values or {}).items():
            setattr(getattr(c, block), k, fmt(v))
    return c


# The tiny scale of the test suite and of every study's "tiny" argument: the code paths of a real run in
# seconds (256 synthetic images of the configured shape, batches of 16, a two-stage convnet, a 32-16
# projector, logs and checkpoints at every step); a test of the data itself sets data.name back.
# `tiny` also applies the method's own small settings (Method.small: queue, prototypes, heads).
TINY = (("data.name", "synthetic"), ("data.train_subset", 256), ("data.global_batch", 16), ("model.widths", (8, 16)),
        ("model.projector", "32-16"), ("optim.warmup_steps", 1), ("optim.warmup_epochs", 0),
        ("train.log_every", 1), ("train.checkpoint_every", 1), ("eval.probe_l2", (1e-3,)))


def tiny(c: ml_collections.ConfigDict, steps: int = 2) -> ml_collections.ConfigDict:
    """Config `c` (any method's) at the TINY scale, for `steps` steps."""
    for dotted, value in TINY:
        block, field = dotted.split(".")
        setattr(getattr(c, block), field, value)
    for k, v in methods.get(c.method.name).small.items():
        if k == "loss":
            c.method.loss.update(v)
        else:
            setattr(c.method, k, v)
    c.train.steps = steps
    return c


def tiny_flags() -> list[str]:
    """TINY as command-line overrides (--config.<field>=<value>)."""
    def text(v):
        return "(" + ", ".join(map(str, v)) + ("," if len(v) == 1 else "") + ")" if isinstance(v, tuple) else str(v)

    return [f"--config.{k}={text(v)}" for k, v in TINY]
