"""fileio on a local disk and on a file system reached through TensorFlow's
gfile (ram://, fast and in memory): config.json, metrics.jsonl (rewritten
whole, since object stores cannot append), TensorBoard events (staged locally,
uploaded whole), results and plots. tests/test_gcs.py runs the same on gs://
against a GCS server."""
import json
import os

import numpy as np
import pytest
from clu import metric_writers

from duality import checkpoint, fileio
from duality.analysis import curves
from duality.metrics import Writer


def test_remote_and_local_files_round_trip(tmp_path):
    for root in (str(tmp_path), "ram://duality_test_files"):
        path = os.path.join(root, "sub", "a.json")
        fileio.write_text(path, '{"x": 1}')
        assert fileio.exists(path) and json.loads(fileio.read_text(path)) == {"x": 1}
        fileio.write_text(path, '{"x": 2}')  # replaced whole
        assert json.loads(fileio.read_text(path)) == {"x": 2} and not fileio.exists(path + ".tmp")
    assert fileio.is_remote("gs://bucket/run") and not fileio.is_remote(str(tmp_path))


def test_a_tree_moves_whole_on_local_and_remote_file_systems(tmp_path):
    # how a corrupt checkpoint is set aside (checkpoints/<step> -> checkpoints.corrupt/<step>)
    for root in (str(tmp_path), "ram://duality_test_move"):
        src, dst = f"{root}/checkpoints/7", f"{root}/checkpoints.corrupt/7"
        fileio.write_text(f"{src}/state/a.bin", "a")
        fileio.write_text(f"{src}/meta.json", "{}")
        fileio.write_text(f"{dst}/stale.txt", "an older copy, replaced")
        fileio.move_tree(src, dst)
        assert not fileio.exists(src) and not fileio.exists(f"{dst}/stale.txt"), root
        assert fileio.read_text(f"{dst}/state/a.bin") == "a" and fileio.read_text(f"{dst}/meta.json") == "{}"


def test_a_remote_workdir_gets_its_config_metrics_events_and_curves():
    workdir = "ram://duality_test_workdir"
    checkpoint.check_writable(workdir)  # no local checks for a remote path
    checkpoint.write_config(workdir, {"seed": 0, "model": {"encoder": "small"}})
    checkpoint.check_config(workdir, {"seed": 0, "model": {"encoder": "small"}}, resuming=True)
    try:
        checkpoint.check_config(workdir, {"seed": 0, "model": {"encoder": "resnet18"}}, resuming=True)
        raise AssertionError("a changed model was accepted")
    except ValueError as e:
        assert "different model" in str(e)
    w = Writer(workdir, remote_every=0.0)
    for step in (1, 2, 3):
        w.write(step, {"loss": 1.0 / step, "lr": 0.1, "probe_top1": 0.5, "z_std": np.float32(0.9)})
    w.close()
    w = Writer(workdir, remote_every=3600.0)  # a resumed run keeps the earlier lines
    w.write(4, {"loss": 0.2, "lr": 0.1, "probe_top1": 0.6, "z_std": 0.9})
    w.close()
    rows = curves.read_metrics(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and rows[1]["loss"] == 0.5
    events = [n for n in fileio.listdir(workdir) if n.startswith("events.out.tfevents")]
    assert len(events) == 2 and all(len(fileio.read_bytes(f"{workdir}/{n}")) > 100 for n in events)
    out = curves.plot_training(workdir)
    assert out.startswith("ram://") and fileio.exists(out)


@pytest.mark.parametrize("where", ["local", "ram"])
def test_a_resumed_run_drops_the_rows_it_is_about_to_replay(tmp_path, monkeypatch, where):
    real = metric_writers.create_default_writer
    monkeypatch.setattr(metric_writers, "create_default_writer",
                        lambda logdir, just_logging=False, **k: real(logdir, just_logging=True, **k))
    workdir = str(tmp_path) if where == "local" else "ram://duality_test_replay"
    w = Writer(workdir, remote_every=0.0)
    for step in (1, 2, 3, 4, 5):  # logged, but the last checkpoint was step 3 when the process died
        w.write(step, {"loss": float(step)})
    w.close()
    w = Writer(workdir, remote_every=0.0, start_step=3)
    for step in (4, 5, 6):
        w.write(step, {"loss": 10.0 * step})
    w.close()
    rows = [json.loads(x) for x in fileio.read_text(workdir + "/metrics.jsonl").splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and rows[3]["loss"] == 40.0


def test_every_workdir_file_operation_goes_through_fileio():
    # A bare open()/os.path/glob on a workdir path works on a laptop and fails on gs:// (the workdir lands in
    # a local folder named "gs:"). Only fileio touches files; the two exceptions below are local by nature.
    import re

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bare = re.compile(r"\bopen\(|os\.path\.(exists|isdir|isfile|getsize)\(|os\.(listdir|makedirs|replace|remove)\(|"
                      r"\bglob\.glob\(|\.savefig\(|shutil\.")
    allowed = {("checkpoint.py", "while not os.path.exists(path):"),  # check_writable: local paths only
               ("checkpoint.py", "if not os.path.isdir(path):"),
               ("metrics.py", "for name in os.listdir(self._staging):"),  # the local staging folder of events
               ("metrics.py", 'with open(os.path.join(self._staging, name), "rb") as f:'),
               ("metrics.py", "shutil.rmtree(self._staging, ignore_errors=True)"),
               ("lock.py", 'with open(tmp, "w") as f:'),  # the local lock's exclusive create (a hard link)
               ("lock.py", "os.remove(path)"), ("lock.py", "os.remove(tmp)")}
    found = []
    for folder in ("duality", "duality/analysis", "duality/methods"):
        for name in sorted(os.listdir(os.path.join(root, folder))):
            if not name.endswith(".py") or name == "fileio.py":
                continue
            for line in open(os.path.join(root, folder, name)).read().splitlines():
                if bare.search(line) and (name, line.split("  #")[0].strip()) not in allowed:
                    found.append(f"{folder}/{name}: {line.strip()}")
    assert not found, "\n".join(found)
