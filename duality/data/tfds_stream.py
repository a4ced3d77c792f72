"""Streaming tfds sources with variable-size images: imagenette, imagenet2012.

These do not fit in memory, so unlike `tfds_source` (CIFAR, STL-10) they are
read as a tf.data stream. The design keeps the two properties the in-memory
pipeline has:

* **Deterministic order from the seed, position = step.** Each host reads
  only its own contiguous shard of the split (`tfds.even_splits`, equal
  sizes, so every host has the same number of steps per epoch). Epoch e
  reads that shard with file order and a shuffle buffer seeded from
  (seed, host, e); batch b of epoch e is positions [b * B_h, (b + 1) * B_h)
  of that order. Resuming at step s rebuilds the stream for epoch
  s // steps_per_epoch and skips the records before it; the skip happens
  before decoding (records stay encoded bytes until then), so it costs a
  read, not a decode, per skipped image.
* **Per-example randomness from the position, not from the thread.** The
  host-side crop of example i of epoch e uses stateless random ops seeded
  from (seed, host, e, view) and i, so parallel decoding cannot change it.

Decoding and RandomResizedCrop run on the host, once per view, from the full
decoded image (an ImageNet picture is ~400x350; cropping it on device would
need a padded fixed-size copy): `tf.image.stateless_sample_distorted_bounding_box`
draws a box with area fraction in the view's `crop_scale` and aspect ratio in
its `crop_ratio` (10 tries, then the whole image, where torchvision falls
back to a centre crop), which is resized to the view's size with bilinear,
antialiased interpolation (torchvision's recipes use bicubic; bilinear is
the cheaper kernel TF antialiases). The device then runs the rest of each
view's recipe (flip, colour, grayscale, blur, solarisation) with its crop
switched off (`augment.augment(..., crop=False)`).

Batches are {"views": uint8 [B_h, V, S, S, C], "label": int32 [B_h]} plus
"local_views": uint8 [B_h, K, s, s, C] with multi-crop. Evaluation splits
(probing) are decoded with the usual resize-then-centre-crop (shorter side
to S / 0.875, centre S x S) and only when first used.

The data must be prepared in the tfds data directory beforehand (ImageNet
needs its manual download); nothing is downloaded at run time.
"""
from __future__ import annotations

import numpy as np

SPECS = {  # name: (classes, pretraining split, probe train split, test split)
    "imagenette": (10, "train", "train", "validation"),
    "imagenet2012": (1000, "train", "train", "validation"),
}
CENTRE_CROP_FRACTION = 0.875  # evaluation view: resize the shorter side to S / 0.875, then crop S x S


def base_name(name: str) -> str:
    """'imagenette/160px-v2' -> 'imagenette' (tfds builder configs are allowed)."""
    return name.split("/")[0].split(":")[0]


def _builder(name: str, data_dir):
    import tensorflow_datasets as tfds

    try:
        b = tfds.builder(name, data_dir=data_dir or None)
    except Exception as e:  # unknown builder config, malformed name
        raise ValueError(f"data.name={name!r} is not a tfds data set: {e}") from None
    return b


def _open(builder, name: str, split, data_dir, **kw):
    import tensorflow_datasets as tfds

    try:
        return builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()}, **kw)
    except (AssertionError, FileNotFoundError, OSError, ValueError) as e:
        raise FileNotFoundError(
            f"tfds data set {name!r} (split {split!r}) is not prepared in {data_dir or '~/tensorflow_datasets'}: "
            f"run `tfds build {name}` where there is internet (ImageNet: with its manual download in "
            f"<data_dir>/downloads/manual) and copy the directory, or set data.data_dir. "
            f"({type(e).__name__}: {str(e)[:200]})") from None


def _count(ds) -> int:
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return sum(1 for _ in ds)  # records only, nothing decoded


def _seed(*parts: int) -> int:
    """A 31-bit seed mixed from integers (stable across processes and Python versions)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint32)[0] >> 1)


def _decode(encoded, channels: int):
    import tensorflow as tf

    return tf.io.decode_image(encoded, channels=channels, expand_animations=False)


def random_resized_crop(image, seed, size: int, scale, ratio):
    """Host-side RandomResizedCrop of one decoded uint8 image [h, w, C] -> uint8 [size, size, C].

    `seed` is a stateless seed (int64 [2]); the same seed gives the same crop.
    """
    import tensorflow as tf

    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        min_object_covered=0.0, aspect_ratio_range=tuple(ratio), area_range=tuple(scale), max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    crop = tf.slice(image, begin, extent)
    out = tf.image.resize(tf.cast(crop, tf.float32), (size, size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)


def center_crop(image, size: int):
    """Evaluation view: shorter side to size / 0.875, centre crop size x size, uint8."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = (size / CENTRE_CROP_FRACTION) / tf.reduce_min(shape)
    new = tf.cast(tf.round(shape * scale), tf.int32)
    new = tf.maximum(new, size)
    out = tf.image.resize(tf.cast(image, tf.float32), new, method="bilinear", antialias=True)
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    out = out[top:top + size, left:left + size]
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)


def example_fn(views, local_views, view_seeds, channels: int):
    """(position in epoch, tfds example with encoded image) -> {"views", "label"[, "local_views"]}.

    Decodes once and crops every view from the full image; view v's crop of
    the example at position i is seeded by (view_seeds[v], i).
    """
    import tensorflow as tf

    views, local = list(views), list(local_views)

    def process(index, ex):
        image = _decode(ex["image"], channels)
        crops = [random_resized_crop(image, tf.stack([tf.constant(view_seeds[v], tf.int64), index]), *spec)
                 for v, spec in enumerate(views + local)]
        out = {"views": tf.stack(crops[:len(views)]),
               "label": tf.cast(ex["label"], tf.int32) if "label" in ex else tf.constant(-1, tf.int32)}
        if local:
            out["local_views"] = tf.stack(crops[len(views):])
        return out

    return process


class Stream:
    """Step-indexed host-local batches of a tfds split, decoded and cropped on the host.

    `views` and `local_views` are lists of (size, crop_scale, crop_ratio).
    `batch(step)` returns this host's rows of global batch `step`; consecutive
    steps are served from one prefetching tf.data iterator, and any other step
    (a resume, a jump) rebuilds the stream at that position.
    """

    def __init__(self, name: str, split: str, global_batch: int, seed: int, views, local_views=(),
                 channels: int = 3, data_dir=None, process_index: int = 0, process_count: int = 1,
                 shuffle_buffer: int = 10_000, limit: int = 0):
        import tensorflow_datasets as tfds

        if global_batch % process_count:
            raise ValueError(f"global batch {global_batch} is not divisible by the {process_count} hosts")
        self.name, self.data_dir, self.seed = name, data_dir, seed
        self.views, self.local_views, self.channels = list(views), list(local_views), channels
        self.process_index, self.shuffle_buffer = process_index, shuffle_buffer
        self.global_batch, self.host_batch = global_batch, global_batch // process_count
        self._builder = _builder(name, data_dir)
        # `limit` (data.train_subset) is global and fixed: the first `limit` examples of the split,
        # cut before any shuffling, then shared evenly between the hosts.
        base = f"{split}[:{limit}]" if limit else split
        self.split = tfds.even_splits(base, n=process_count, drop_remainder=True)[process_index]
        n = _count(self._records(shuffle_seed=None))
        if limit:
            n = min(n, limit // process_count)
        self.host_size = n
        self.steps_per_epoch = n // self.host_batch
        if self.steps_per_epoch < 1:
            raise ValueError(f"{name}: this host's shard has {n} images, fewer than the host batch "
                             f"{self.host_batch}; lower data.global_batch")
        self._iter, self._next_step = None, None

    def _records(self, shuffle_seed):
        import tensorflow_datasets as tfds

        kw = dict(shuffle_files=shuffle_seed is not None)
        if shuffle_seed is not None:
            kw["read_config"] = tfds.ReadConfig(shuffle_seed=shuffle_seed)
        return _open(self._builder, self.name, self.split, self.data_dir, **kw)

    def _epoch(self, epoch: int, skip: int):
        import tensorflow as tf

        s = _seed(self.seed, self.process_index, epoch)
        ds = self._records(shuffle_seed=s).shuffle(self.shuffle_buffer, seed=s, reshuffle_each_iteration=False)
        ds = ds.take(self.steps_per_epoch * self.host_batch).enumerate().skip(skip)
        view_seeds = [_seed(self.seed, self.process_index, epoch, 1 + v)
                      for v in range(len(self.views) + len(self.local_views))]
        process = example_fn(self.views, self.local_views, view_seeds, self.channels)
        ds = ds.map(process, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(self.host_batch, drop_remainder=True)

    def _stream(self, step: int):
        import tensorflow as tf
        import tensorflow_datasets as tfds

        epoch, b = divmod(step, self.steps_per_epoch)

        def epochs():  # the resumed epoch from its position, then whole epochs
            e, skip = epoch, b * self.host_batch
            while True:
                yield from tfds.as_numpy(self._epoch(e, skip).prefetch(tf.data.AUTOTUNE))
                e, skip = e + 1, 0

        return epochs()

    def batch(self, step: int) -> dict[str, np.ndarray]:
        if self._iter is None or self._next_step != step:
            self._iter = self._stream(step)
        self._next_step = step + 1
        return next(self._iter)


def load_eval(name: str, split: str, size: int, channels: int = 3, data_dir=None, limit: int = 0,
              batch: int = 256) -> dict[str, np.ndarray]:
    """A labelled split as centre-cropped uint8 arrays (the evaluation view), in file order."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    ds = _open(_builder(name, data_dir), name, split, data_dir, shuffle_files=False)
    if limit:
        ds = ds.take(limit)
    ds = ds.map(lambda ex: {"image": center_crop(_decode(ex["image"], channels), size),
                           "label": tf.cast(ex["label"], tf.int32)},
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    images, labels = [], []
    for d in tfds.as_numpy(ds.batch(batch).prefetch(2)):
        images.append(d["image"])
        labels.append(d["label"])
    return {"image": np.concatenate(images), "label": np.concatenate(labels)}
