"""Every read, write and listing of a workdir: on a local disk, on object
storage (gs://, s3://, az://) or on any other file system TensorFlow's gfile
knows (ram:// in the tests).

Checkpoints are written by Orbax, which reaches object storage through the
same path layer used here (`etils.epath`) plus tensorstore for the array
bytes; everything else a run, a probe, an analysis or a study writes goes
through this module. So one switch decides how a workdir is reached:

* gs:// with TensorFlow installed: epath uses TensorFlow's gfile (TF's own
  GCS client), as big_vision and scenic runs do;
* `EPATH_USE_TF=false`: epath uses fsspec (gcsfs / s3fs), which honours
  `STORAGE_EMULATOR_HOST`. The tests run that way against a GCS emulator on
  127.0.0.1 (tests/gcs_emulator.py), since TF's GCS client has its endpoint
  compiled in and cannot be pointed at an emulator.

Local paths use Python's own file functions (nothing is imported for them);
local writes are atomic (a temporary file renamed over the target), and an
object store publishes an object whole when its upload completes.
"""
from __future__ import annotations

import functools
import glob as _glob
import os
import posixpath
import shutil

_EPATH_SCHEMES = ("gs", "s3", "az")  # what etils.epath (and so Orbax) can reach


def is_remote(path) -> bool:
    return "://" in str(path)


def is_object_store(path) -> bool:
    """gs://, s3://, az://: buckets of objects (reached through etils.epath, as Orbax reaches them)."""
    return _scheme(str(path)) in _EPATH_SCHEMES


def _scheme(path: str) -> str:
    return str(path).split("://", 1)[0]


def bucket(path) -> str:
    """The root of a remote path: "gs://b" for "gs://b/runs/x"."""
    scheme, rest = str(path).split("://", 1)
    return f"{scheme}://{rest.split('/')[0]}"


class _Gfile:
    """TensorFlow's gfile for schemes epath does not know (ram://, hdfs://)."""

    def __init__(self):
        import tensorflow as tf

        self.g = tf.io.gfile

    def exists(self, p):
        return self.g.exists(p)

    def isdir(self, p):
        return self.g.isdir(p)

    def makedirs(self, p):
        self.g.makedirs(p)

    def open(self, p, mode):
        return self.g.GFile(p, mode)

    def listdir(self, p):
        return [n.rstrip("/") for n in self.g.listdir(p)]

    def glob(self, pattern):
        return self.g.glob(pattern)

    def remove(self, p):
        self.g.remove(p)

    def rmtree(self, p):
        self.g.rmtree(p)

    def copy(self, a, b):
        self.g.copy(a, b, overwrite=True)

    def rename(self, a, b):
        self.g.rename(a, b, overwrite=True)


class _Epath:
    """etils.epath, the layer Orbax itself uses for gs://, s3:// and az://."""

    def __init__(self):
        from etils import epath

        self.P = epath.Path

    def exists(self, p):
        return self.P(p).exists()

    def isdir(self, p):
        return self.P(p).is_dir()

    def makedirs(self, p):
        self.P(p).mkdir(parents=True, exist_ok=True)

    def open(self, p, mode):
        return self.P(p).open(mode)

    def listdir(self, p):
        return [c.name for c in self.P(p).iterdir()]

    def glob(self, pattern):
        root = bucket(pattern)
        return [os.fspath(c) for c in self.P(root).glob(pattern[len(root):].lstrip("/"))]

    def remove(self, p):
        self.P(p).unlink()

    def rmtree(self, p):
        self.P(p).rmtree()

    def copy(self, a, b):
        self.P(a).copy(self.P(b), overwrite=True)


@functools.cache
def _client(object_store: bool):
    return _Epath() if object_store else _Gfile()


def _fs(path: str):
    return _client(is_object_store(path))


def join(*parts) -> str:
    """os.path.join; on a remote path, with '..' resolved (object stores take names literally)."""
    if not is_remote(parts[0]):
        return os.path.join(*map(str, parts))
    scheme, rest = posixpath.join(*map(str, parts)).split("://", 1)
    return f"{scheme}://{posixpath.normpath(rest)}"


def abspath(path) -> str:
    """A local path made absolute (a remote one is already); what Orbax and the study's relative links need."""
    return str(path) if is_remote(path) else os.path.abspath(path)


def exists(path) -> bool:
    return _fs(path).exists(str(path)) if is_remote(path) else os.path.exists(path)


def isdir(path) -> bool:
    return _fs(path).isdir(str(path)) if is_remote(path) else os.path.isdir(path)


def makedirs(path) -> None:
    if is_remote(path):
        _fs(path).makedirs(str(path))
    else:
        os.makedirs(path, exist_ok=True)


def read_bytes(path) -> bytes:
    if is_remote(path):
        with _fs(path).open(str(path), "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def read_text(path) -> str:
    return read_bytes(path).decode()


def write_bytes(path, data: bytes) -> None:
    """Write `path` whole: a reader sees the old file or the new one, never half of one."""
    path = str(path)
    d = os.path.dirname(path)
    if is_remote(path):
        if is_object_store(path):  # an object appears whole once its upload completes
            with _fs(path).open(path, "wb") as f:
                f.write(data)
            return
        if d:  # other file systems: a temporary file renamed over the target (ram:// appends to an open file)
            makedirs(d)
        g = _fs(path)
        with g.open(path + ".tmp", "wb") as f:
            f.write(data)
        g.rename(path + ".tmp", path)
        return
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode())


def append_text(path, text: str) -> None:
    """Append to a local file; an object store cannot append, so there the object is rewritten whole."""
    if is_remote(path):
        write_text(path, (read_text(path) if exists(path) else "") + text)
        return
    with open(path, "a") as f:
        f.write(text)


def listdir(path) -> list[str]:
    """The names in directory `path` ([] when it does not exist)."""
    if is_remote(path):
        return _fs(path).listdir(str(path)) if _fs(path).exists(str(path)) else []
    return os.listdir(path) if os.path.isdir(path) else []


def glob(pattern: str) -> list[str]:
    """Paths matching `pattern` (shell wildcards), sorted."""
    if is_remote(pattern):
        return sorted(_fs(pattern).glob(pattern))
    return sorted(_glob.glob(pattern))


def remove(path) -> None:
    """Delete one file (a missing one is not an error)."""
    if is_remote(path):
        if _fs(path).exists(str(path)):
            _fs(path).remove(str(path))
    elif os.path.exists(path):
        os.remove(path)


def rmtree(path) -> None:
    """Delete a directory and everything under it (a missing one is not an error)."""
    if is_remote(path):
        if _fs(path).exists(str(path)):
            _fs(path).rmtree(str(path))
    elif os.path.exists(path):
        shutil.rmtree(path)


def _walk_files(root: str) -> list[str]:
    """Every file under remote directory `root`, as paths relative to it."""
    out, todo = [], [""]
    while todo:
        rel = todo.pop()
        here = posixpath.join(root, rel) if rel else root
        for name in _fs(root).listdir(here):
            child = posixpath.join(rel, name) if rel else name
            (todo if _fs(root).isdir(posixpath.join(root, child)) else out).append(child)
    return out


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
    rmtree(dst)
    fs = _fs(src)
    for rel in _walk_files(src.rstrip("/")):
        target = posixpath.join(dst, rel)
        if not is_object_store(dst):
            makedirs(posixpath.dirname(target))
        fs.copy(posixpath.join(src, rel), target)
    rmtree(src)


def save_figure(fig, path, **kwargs) -> None:
    """matplotlib's savefig, to a local or remote path (atomically, like write_bytes)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=os.path.splitext(str(path))[1][1:] or "png", **kwargs)
    write_bytes(path, buf.getvalue())
