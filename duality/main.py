"""Entry point.

  python -m duality.main --config=configs/vicreg.py:fashion_mnist --workdir=workdirs/vicreg \
      [--config.optim.base_lr=0.5 ...]          # pretrain, then linear-probe the frozen encoder
  python -m duality.main --config=configs/loss_report.py   # every loss and Theorem 3.3 on synthetic data
  python -m duality.main --mode=probe --workdir=DIR [--step=S]     # linear, kNN, 1%/10%-label probes
  python -m duality.main --mode=analyze --workdir=DIR [--step=S]   # spectrum, RankMe, L_c/L_nc, Prop. 3.1

A pretraining run resumes from --workdir when it holds a checkpoint. At the
end it linear-probes the frozen encoder on the test split and, with
`eval.baselines`, prints two baselines computed in the same run: raw pixels
and the same encoder at random initialisation.

Multi-host: the same command on every host (launch/: tpu_pod.sh,
slurm.sbatch, local_multiprocess.sh). JAX's distributed runtime is started
first (duality/distributed.py: detected on TPU slices and under SLURM, or
--coordinator_address/--num_processes/--process_id).

Exit codes: 0 done (or interrupted by SIGTERM/SIGINT with a checkpoint
saved), 2 bad input (a flag, a config value, missing data, an unwritable or
incompatible workdir; found before anything is written), 1 a failure while
running (a non-finite step, a checkpoint that could not be written).
"""
from __future__ import annotations

import os
import signal
import sys
import time

_STARTED = time.perf_counter()  # before the imports: the job's wall-time split counts them as start-up


def _stopped_outside_training(signum, frame):
    """SIGTERM/SIGINT outside the training loop (start-up, compilation, the end-of-run probe), whose own
    handlers save a checkpoint at the next step boundary instead: every step that ran is already in the
    newest checkpoint, so stop at once, cleanly."""
    print(f"interrupted by signal {signum} outside the training loop: every step that ran is in the newest "
          f"checkpoint (none if no step ran); re-run the same command to continue", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":  # the first thing the process does: no moment in which a signal kills it silently
    for _sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_sig, _stopped_outside_training)

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

config_flags.DEFINE_config_file("config", "configs/loss_report.py",
                                "Config file, optionally with ':arg' (path relative to the repository root).",
                                lock_config=True)
flags.DEFINE_string("workdir", "", "Where checkpoints, metrics and results go (pretraining).")
flags.DEFINE_enum("mode", "", ["", "pretrain", "probe", "analyze"],
                  "probe / analyze a trained workdir (its config.json is used; --config is ignored). "
                  "Default: what the config says (pretraining, or the loss report).")
flags.DEFINE_integer("step", None, "Checkpoint step for --mode=probe/analyze (default: the newest).")
flags.DEFINE_integer("samples", 2048, "Test images --mode=analyze uses.")
flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"],
                  "Multi-host start-up: auto (when SLURM, Open MPI or a TPU slice shows several processes, or the "
                  "flags below are given), on (always; JAX detects the cluster), off (one process).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for an explicit multi-process launch.")
flags.DEFINE_integer("num_processes", None, "Number of processes, for an explicit multi-process launch.")
flags.DEFINE_integer("process_id", None, "This process's index (0-based), for an explicit multi-process launch.")
FLAGS = flags.FLAGS
BAD_INPUT = 2


def _fail(code: int, e: BaseException, now: bool = False):
    print(f"error: {e}", file=sys.stderr, flush=True)
    if now:  # skip the interpreter's shutdown, which waits for device work that may never finish
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code)


def _parse_flags(argv):
    """absl's parser, with a bad flag or config override reported as bad input (exit code 2)."""
    try:
        return FLAGS(argv)
    except (flags.Error, ValueError, TypeError, AttributeError, KeyError) as e:
        hint = _unknown_field(argv)
        _fail(BAD_INPUT, f"{hint or e}\nSee --helpfull for the flags; config fields are set as "
                         f"--config.<field>=<value>.")
    except SyntaxError as e:  # the config file does not parse
        _fail(BAD_INPUT, f"--config: {e.filename}, line {e.lineno}: {e.msg}; fix the file's syntax")


def _unknown_field(argv) -> str:
    """For an override of a field the config lacks: which block lacks it and the fields that block has."""
    import importlib.util

    path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "configs/loss_report.py")
    file, _, arg = path.partition(":")
    try:
        spec = importlib.util.spec_from_file_location("_duality_config", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cfg = module.get_config(arg) if arg else module.get_config()
    except Exception:  # the config itself is what failed: absl's message says so
        return ""
    for a in argv:
        if not a.startswith("--config."):
            continue
        dotted = a[len("--config."):].split("=", 1)[0]
        node, seen = cfg, []
        for part in dotted.split("."):
            if not hasattr(node, "keys"):
                break
            if part not in node:
                where = "config." + ".".join(seen) if seen else "the config"
                return (f"--config.{dotted}: {where} has no field {part!r}; its fields are "
                        f"{', '.join(sorted(node.keys()))}")
            node, seen = node[part], seen + [part]
    return ""


def run_loss_report(cfg):
    import jax

    from duality.analysis import loss_report

    print(f"duality loss report on {jax.device_count()} {jax.default_backend()} device(s)")
    for n, m in [(cfg.batch, cfg.dim), (max(2, cfg.batch // 4), cfg.dim * 4)]:
        print(loss_report.format_report(loss_report.evaluate(n, m, cfg.seed)), flush=True)
    if cfg.plot:
        loss_report.plot_duality(cfg.plot, seed=cfg.seed)
        print(f"\nfigure: {cfg.plot}")


def run_pretraining(cfg, workdir: str):
    from duality import checkpoint, lock, train

    try:
        prepared = train.prepare(cfg, workdir)  # every input check, before anything is written
    except (ValueError, OSError, KeyError) as e:
        _fail(BAD_INPUT, e)
    try:
        train.train_and_evaluate(cfg, workdir, prepared=prepared, started=_STARTED)
    except lock.LockedError as e:  # another run took the workdir after the check (both started at once)
        _fail(BAD_INPUT, e)
    except (FloatingPointError, checkpoint.CheckpointError) as e:
        _fail(1, e)
    except KeyboardInterrupt as e:  # a second SIGTERM/SIGINT: the step is hung, nothing is left to save
        _fail(130, e, now=True)


def run_probe(workdir: str, step):
    from duality import fileio, probe

    if not workdir:
        _fail(BAD_INPUT, "--mode=probe needs --workdir=DIR (a trained run)")
    try:
        r = probe.probe_workdir(workdir, step)
    except (ValueError, FileNotFoundError) as e:
        _fail(BAD_INPUT, e)
    print(f"probe of {workdir} at step {r['step']} ({r['data']}: {r['train_examples']} train / "
          f"{r['test_examples']} test images, {r['feature_dim']}-d frozen representation)")
    print(probe.format_report(r))
    print(f"written: {fileio.join(workdir, 'probe_step%d.json' % r['step'])}")


def run_analyze(workdir: str, step, samples: int):
    from duality import fileio
    from duality.analysis import embedding

    if not workdir:
        _fail(BAD_INPUT, "--mode=analyze needs --workdir=DIR (a trained run)")
    if samples < 2:  # before the workdir is read: a bad flag costs nothing
        _fail(BAD_INPUT, f"--samples={samples}: the analysis needs at least 2 test images (default 2048)")
    try:
        r = embedding.analyze_workdir(workdir, step, samples)
    except (ValueError, FileNotFoundError) as e:
        _fail(BAD_INPUT, e)
    print(f"analysis of {workdir} ({r['method']} on {r['data']}) at step {r['step']}, {r['samples']} test images:")
    print(embedding.format_report(r))
    print(f"written: {fileio.join(workdir, 'analysis_step%d.json' % r['step'])} and {r.get('plot', '')}")


def main(argv):
    if len(argv) > 1:
        _fail(BAD_INPUT, f"unexpected arguments: {argv[1:]} (flags are written --name=value)")
    logging.set_verbosity(logging.WARNING)  # jax logs every backend it probes at INFO
    from duality import distributed, runtime

    runtime.tune_allocator()  # before the first large array: freed memory is reused, not faulted in again
    runtime.tune_xla_cpu()  # before the backend starts: XLA's multi-threaded convolutions and products

    try:
        how = distributed.initialize(FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes,
                                     FLAGS.process_id)
    except ValueError as e:
        _fail(BAD_INPUT, e)
    if how != "single process":
        print(how, flush=True)
    if FLAGS.mode == "probe":
        return run_probe(FLAGS.workdir, FLAGS.step)
    if FLAGS.mode == "analyze":
        return run_analyze(FLAGS.workdir, FLAGS.step, FLAGS.samples)
    cfg = FLAGS.config
    try:
        job = cfg.get("job", "pretrain")
    except OSError as e:  # config_flags defers a config file that failed to load until it is first read
        _fail(BAD_INPUT, f"--config: {str(e).strip().splitlines()[-1].strip()}; give an existing config file, "
                         f"e.g. --config=configs/vicreg.py:fashion_mnist (relative to the current directory)")
    if job == "loss_report":
        run_loss_report(cfg)
    else:
        run_pretraining(cfg, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
