"""A trained encoder from a workdir, usable with no training code: `duality.load`.

    enc = duality.load("workdirs/vicreg_fashion_mnist")      # newest checkpoint
    out = enc.encode(images)            # uint8 [N, H, W, C] -> {"h": [N, D], "z": [N, M]}
    enc.config.model.projector, enc.step

The checkpoint is restored from its own metadata (shapes and dtypes as
saved) onto the devices present now, so a run trained on 8 devices or a pod
loads on a laptop. Encoding shards each batch over every local device
(batch-parallel, parameters replicated) with BatchNorm in inference mode and
no augmentation; the last batch is padded to the batch shape, so a data set
compiles one program (plus one per distinct batch size of later calls).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from duality import fileio, models
from duality.data import augment as aug

AXIS = "batch"


def local_mesh():
    """All local devices on one axis; Auto, so the compiler propagates the batch sharding
    through augmentation and the model (evaluation needs no per-device program)."""
    return jax.make_mesh((jax.local_device_count(),), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=jax.local_devices())


def _replicate_locally(tree, mesh):
    """Replicated copies on this host's devices (from a replicated array on any mesh, even a pod's)."""
    local = jax.tree.map(lambda a: a.addressable_data(0) if isinstance(a, jax.Array) else a, tree)
    return jax.device_put(local, NamedSharding(mesh, P()))


def checkpoint_steps(workdir: str) -> list[int]:
    path = fileio.abspath(fileio.join(workdir, "checkpoints"))
    if not fileio.isdir(path):
        return []
    return list(ocp.CheckpointManager(path).all_steps())


def restore(workdir: str, step: int | None = None, sharding=None) -> tuple[dict, int]:
    """(the saved train state as a dict of arrays, its step) from workdir/checkpoints.

    `sharding` places every array (default: replicated over the local devices).
    """
    path = fileio.abspath(fileio.join(workdir, "checkpoints"))
    steps = checkpoint_steps(workdir)
    if not steps:
        raise FileNotFoundError(f"{workdir} holds no checkpoint (looked in {path}); train first with "
                                f"`python -m duality.main --config=... --workdir={workdir}`")
    if step is None:
        step = max(steps)
    elif step not in steps:
        raise ValueError(f"{workdir} has no checkpoint at step {step}; it has steps {sorted(steps)}")
    if sharding is None:
        sharding = NamedSharding(local_mesh(), P())
    mngr = ocp.CheckpointManager(path, item_handlers=ocp.StandardCheckpointHandler())
    meta = mngr.item_metadata(step)
    meta = getattr(meta, "tree", meta)
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), meta)
    state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    mngr.close()
    from duality import checkpoint

    checkpoint.verify(path, step, state)  # bytes changed in place since the save: a ValueError naming the array
    return state, step


def read_config(workdir: str) -> ml_collections.ConfigDict:
    from duality import checkpoint

    stored = checkpoint.stored_config(workdir)
    if stored is None:
        raise FileNotFoundError(f"{fileio.join(workdir, 'config.json')} is missing: is {workdir} a duality workdir?")
    return ml_collections.ConfigDict(stored)


class Encoder:
    """Frozen encoder + projector from a checkpoint (see module docstring)."""

    def __init__(self, config: ml_collections.ConfigDict, params, batch_stats, step: int = 0):
        self.mesh = local_mesh()
        self.config, self.step = config, step
        self.params, self.batch_stats = _replicate_locally((params, batch_stats), self.mesh)
        self.model = models.build(config.model, axis_name=None)
        self.size = config.data.image_size
        self.mean, self.std = tuple(config.data.mean), tuple(config.data.std)
        self._rows = NamedSharding(self.mesh, P(AXIS))

    @functools.cached_property
    def _apply(self):
        @jax.jit
        def f(params, batch_stats, images):
            x = aug.center_view(images, self.size, self.mean, self.std)
            out = self.model.apply({"params": params, "batch_stats": batch_stats}, x, train=False)
            return {"h": out["h"].astype(jnp.float32), "z": out["z"].astype(jnp.float32)}

        return f

    @functools.cached_property
    def _apply_views(self):
        views = [aug.view_spec(v) for v in self.config.data.views]

        @jax.jit
        def f(params, batch_stats, images, key, first):
            outs = []
            rows = first + jnp.arange(images.shape[0])  # each image's key is fixed by its index
            for i, spec in enumerate(views):
                keys = jax.vmap(lambda r: jax.random.fold_in(jax.random.fold_in(key, i), r))(rows)
                x = jax.vmap(lambda k, im: aug.augment_one(k, im, spec))(keys, aug.to_float(images))
                x = aug.normalize(x, self.mean, self.std)
                outs.append(self.model.apply({"params": params, "batch_stats": batch_stats}, x, train=False)["z"]
                            .astype(jnp.float32))
            return outs

        return f

    def _batches(self, images, batch: int):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        if images.dtype != np.uint8:
            raise TypeError(f"encode expects uint8 images [N, H, W, C] (as the data sources give), got {images.dtype}")
        n, d = len(images), self.mesh.size
        batch = max(d, min(batch, -(-n // d) * d) // d * d)
        for start in range(0, n, batch):
            chunk = images[start:start + batch]
            real = len(chunk)
            if real < batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch - real, 0)])
            yield jax.device_put(chunk, self._rows), real

    def encode(self, images, batch: int = 1024) -> dict[str, np.ndarray]:
        """uint8 images [N, H, W, C] -> {"h": representation [N, D], "z": projector output [N, M]} (numpy)."""
        out = {"h": [], "z": []}
        for x, real in self._batches(images, batch):
            r = self._apply(self.params, self.batch_stats, x)
            for k in out:
                out[k].append(np.asarray(r[k])[:real])
        return {k: np.concatenate(v) for k, v in out.items()}

    def encode_views(self, images, seed: int = 0, batch: int = 1024) -> list[np.ndarray]:
        """Projector outputs of the config's two augmented views of each image (positive pairs).

        Image i's views depend only on (seed, i): not on the batch size or the device count.
        """
        out, first = None, 0
        for x, real in self._batches(images, batch):
            zs = self._apply_views(self.params, self.batch_stats, x, jax.random.PRNGKey(seed), first)
            first += x.shape[0]
            out = [[] for _ in zs] if out is None else out
            for o, z in zip(out, zs):
                o.append(np.asarray(z)[:real])
        return [np.concatenate(o) for o in out]


def load(workdir: str, step: int | None = None) -> Encoder:
    """The encoder of `workdir` at `step` (default: the newest checkpoint)."""
    config = read_config(workdir)
    state, step = restore(workdir, step)
    return Encoder(config, state["params"], state["batch_stats"], step)
