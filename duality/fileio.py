"""The workdir's small files (config.json, metrics.jsonl, results, plots) on a
local disk or on any file system TensorFlow knows (gs://, s3:// with its
plugin; ram:// in the tests). Orbax writes the checkpoints itself.

Local paths use Python's own file functions, so TensorFlow is imported only
for a remote workdir.
"""
from __future__ import annotations

import os
import shutil


def is_remote(path) -> bool:
    return "://" in str(path)


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def makedirs(path: str) -> None:
    if is_remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def read_text(path: str) -> str:
    if is_remote(path):
        with _gfile().GFile(path, "r") as f:
            return f.read()
    with open(path) as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    """Write `path` whole: a reader sees the old file or the new one, never half of one."""
    d = os.path.dirname(path)
    if d:
        makedirs(d)
    tmp = path + ".tmp"
    if is_remote(path):
        gf = _gfile()
        with gf.GFile(tmp, "wb") as f:
            f.write(data)
        gf.rename(tmp, path, overwrite=True)
    else:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode())


def listdir(path: str) -> list[str]:
    """The names in directory `path` ([] when it does not exist)."""
    if is_remote(path):
        return [n.rstrip("/") for n in _gfile().listdir(path)] if _gfile().exists(path) else []
    return os.listdir(path) if os.path.isdir(path) else []


def remove(path: str) -> None:
    """Delete one file (a missing one is not an error)."""
    if is_remote(path):
        if _gfile().exists(path):
            _gfile().remove(path)
    elif os.path.exists(path):
        os.remove(path)


def move_tree(src: str, dst: str) -> None:
    """Move directory `src` to `dst`, replacing what `dst` held.

    Object stores have no directory rename, so a remote tree is copied file by
    file and the source deleted only once the copy is complete: an
    interruption leaves two copies, never none.
    """
    if not is_remote(src):
        if os.path.exists(dst):
            shutil.rmtree(dst)
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        shutil.move(src, dst)
        return
    gf = _gfile()
    if gf.exists(dst):
        gf.rmtree(dst)
    for root, _, files in gf.walk(src):
        out = dst + root[len(src.rstrip("/")):]
        gf.makedirs(out)
        for name in files:
            gf.copy(f"{root.rstrip('/')}/{name}", f"{out.rstrip('/')}/{name}", overwrite=True)
    gf.rmtree(src)


def save_figure(fig, path: str, **kwargs) -> None:
    """matplotlib's savefig, to a local or remote path."""
    if is_remote(path):
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format=os.path.splitext(path)[1][1:] or "png", **kwargs)
        write_bytes(path, buf.getvalue())
    else:
        fig.savefig(path, **kwargs)
