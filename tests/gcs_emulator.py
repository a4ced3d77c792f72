"""A Google Cloud Storage server on 127.0.0.1 for the tests: a real HTTP
server speaking the GCS JSON API (gcp-storage-emulator, pure Python, from
PyPI), in its own process, with every client of a gs:// workdir pointed at it.

Which client reaches it, and how:
* the workdir's small files and Orbax's directory handling: etils.epath ->
  fsspec -> gcsfs, which honours STORAGE_EMULATOR_HOST (EPATH_USE_TF=false:
  TensorFlow's own GCS client has its endpoint, www.googleapis.com, compiled
  in and cannot be pointed at a server on 127.0.0.1);
* the checkpoint arrays: tensorstore's gcs driver, via TENSORSTORE_GCS_HTTP_URL;
* TensorBoard event files: written locally by clu and uploaded through
  fileio (duality.metrics.Writer), so TensorFlow never opens a gs:// path.

The emulator ignores GCS's generation preconditions (ifGenerationMatch,
ifGenerationNotMatch) and sends no x-goog-generation header on reads.
tensorstore's OCDBT checkpoints rely on both (a manifest is replaced only if
it is still the generation that was read), so a plain emulator fails Orbax's
saves at random ("Malformed StorageGeneration"). `_with_preconditions` adds
them, as GCS documents them: 412 when ifGenerationMatch differs (0: the object
must not exist), 304 when ifGenerationNotMatch equals the live generation, and
the generation headers on every read.

    python -m tests.gcs_emulator --port=9023      # a server to try gs:// runs by hand
"""
from __future__ import annotations

import argparse
import http
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BUCKET = "duality-test"


def _with_preconditions(handler):
    from gcp_storage_emulator.exceptions import NotFound

    def wrapped(request, response, storage, *args, **kwargs):
        q = {k: v[0] for k, v in request.query.items() if v}
        params = request.params or {}
        bucket, name = params.get("bucket_name"), params.get("object_id") or q.get("name")
        try:
            obj = storage.get_file_obj(bucket, name) if bucket and name else None
        except NotFound:
            obj = None
        live = obj["generation"] if obj else "0"
        if "ifGenerationMatch" in q and q["ifGenerationMatch"] != live:
            _ = request.data if request.method in ("POST", "PUT") else None  # read the body before answering
            response.status = http.HTTPStatus.PRECONDITION_FAILED
            response.json({"error": {"code": 412, "message": f"generation {live} != {q['ifGenerationMatch']}"}})
            return None
        if obj is not None and "ifGenerationNotMatch" in q and q["ifGenerationNotMatch"] == live:
            response.status = http.HTTPStatus.NOT_MODIFIED
            return None
        out = handler(request, response, storage, *args, **kwargs)
        if obj is not None and request.method == "GET" and response.status in (200, 206):
            response["x-goog-generation"] = obj["generation"]
            response["x-goog-metageneration"] = obj.get("metageneration", "1")
        return out

    return wrapped


def _patch_emulator() -> None:
    from gcp_storage_emulator import server
    from gcp_storage_emulator.handlers import objects

    wrap = {f: _with_preconditions(f) for f in (objects.get, objects.download, objects.insert, objects.delete)}
    server.HANDLERS = tuple((regex, {m: wrap.get(f, f) for m, f in handlers.items()})
                            for regex, handlers in server.HANDLERS)


def serve(port: int) -> None:
    import logging

    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
    _patch_emulator()
    create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET).run()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """The server in a child process; `env` is what a process needs to use it for gs:// paths."""

    def __init__(self):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        # Its log goes to a file: a pipe nobody reads fills up after a few hundred requests and stalls the server.
        self.log = tempfile.NamedTemporaryFile(prefix="duality-gcs-emulator-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.gcs_emulator", f"--port={self.port}"], cwd=root,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        t0 = time.time()
        while True:
            try:
                urllib.request.urlopen(self.url + "/", timeout=2).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() - t0 > 60:
                    self.stop()
                    raise RuntimeError(f"the GCS emulator did not start: {open(self.log.name).read()[-2000:]}")
                time.sleep(0.2)
        self.env = {
            "STORAGE_EMULATOR_HOST": self.url,  # gcsfs (and google-cloud-storage)
            "TENSORSTORE_GCS_HTTP_URL": self.url,  # tensorstore: Orbax's array bytes
            "EPATH_USE_TF": "false",  # epath -> fsspec/gcsfs instead of TF's unpointable GCS client
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # no bucket-layout RPC to the real GCS control plane
            "FSSPEC_GS": '{"use_listings_cache": false}',  # other processes write too: list afresh
            "GOOGLE_CLOUD_PROJECT": "duality-test",
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        os.unlink(self.log.name)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=9023)
    serve(p.parse_args().port)
