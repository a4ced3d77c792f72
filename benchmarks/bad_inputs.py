"""Bad input through the real CLI, one process per case: every checked config field given a value outside
its range, the method's and the loss's hyperparameters, the augmentation views, and the inputs that are not
config fields (config files, data files, workdirs, modes, flags).

  python benchmarks/bad_inputs.py                   # prints the table, writes docs/bad_inputs.md
  python benchmarks/bad_inputs.py --only=optim      # the cases whose name contains "optim"

Each case must exit with code 2, print `error:` and a message naming the field (or file, or flag), and leave
its workdir uncreated. The table lists the value tried, the exit code and the message, so the catalogue of
what is refused, and how it is explained, can be read in one place. tests/test_config_check.py tries
generated values in-process (hypothesis); this is the same from a user's shell.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from duality import config_check as cc  # noqa: E402

CONFIG = "configs/vicreg.py:fashion_mnist"


def _bad_value(rule):
    """One value outside the range the rule states, as a command-line string."""
    if isinstance(rule, cc.Integer):
        return str(rule.lo - 1)
    if isinstance(rule, cc.Real):
        return "nan" if not rule.lo_open else f"{rule.lo:g}"
    if isinstance(rule, cc.Choice):
        return "'nope'" if isinstance(rule.options[0], str) else "7"
    if isinstance(rule, cc.Boolean):
        return "maybe"
    if isinstance(rule, cc.Widths):
        return "1024-0-256"
    if isinstance(rule, cc.IntTuple):
        return "'(0, 8)'"
    if isinstance(rule, cc.RealTuple):
        return "'(-1.0,)'" if not rule.positive else "'(0.0,)'"
    raise AssertionError(rule)


def _view_value(rule):
    if isinstance(rule, cc.Interval):
        return (0.9, 0.1)
    if isinstance(rule, cc.Integer):
        return 0
    return -0.5 if rule.lo == 0 else rule.lo - 1


def cases(scratch: str) -> list[tuple[str, list[str], str, dict]]:
    """(name, CLI arguments after the workdir, text the message must contain, extra environment)."""
    out = []
    for field, rule in cc.RULES.items():
        if field == "data.mean":  # tuples of one per channel: the mean may be any finite number
            value = "'(nan,)'"
        elif field == "data.channels":
            value = "2"
        else:
            value = _bad_value(rule)
        out.append((field, [f"--config={CONFIG}", f"--config.{field}={value}"], field, {}))
    out.append(("train.steps + train.epochs", [f"--config={CONFIG}", "--config.train.steps=0",
                                               "--config.train.epochs=0"], "train.epochs", {}))
    for key, rule in cc.VIEW_RULES.items():  # the views are a tuple of dicts: set through a config file
        path = os.path.join(scratch, f"view_{key}.py")
        with open(path, "w") as f:
            f.write(f"import sys\nsys.path.insert(0, {ROOT!r})\nfrom configs import vicreg\n\n\n"
                    f"def get_config(arg='fashion_mnist'):\n    c = vicreg.get_config(arg)\n"
                    f"    views = [dict(v) for v in c.data.views]\n    views[0][{key!r}] = {_view_value(rule)!r}\n"
                    f"    c.data.views = tuple(views)\n    return c\n")
        out.append((f"data.views[0].{key}", [f"--config={path}"], f"data.views[0].{key}", {}))
    for config, flag, field in (
            ("vicreg", "--config.method.loss.sim_coeff=-1.0", "sim_coeff"),
            ("vicreg", "--config.method.loss.std_target=0.0", "std_target"),
            ("simclr", "--config.method.loss.temperature=0.0", "temperature"),
            ("simclr", "--config.method.loss.temperature=nan", "temperature"),
            ("barlow_twins", "--config.method.loss.lambd=-0.1", "lambd"),
            ("wmse", "--config.method.loss.w_size=100", "w_size"),
            ("swav", "--config.method.loss.sinkhorn_iters=0", "sinkhorn_iters"),
            ("swav", "--config.method.n_prototypes=0", "n_prototypes"),
            ("byol", "--config.method.ema_base=1.5", "ema_base"),
            ("dino", "--config.method.center_momentum=-0.5", "center_momentum"),
            ("moco", "--config.method.queue_size=-1", "queue_size"),
            ("dino", "--config.method.out_dim=0", "out_dim"),
            ("nnclr", "--config.method.queue_size=0", "queue_size"),
            ("vicreg", "--config.method.queue_size=4096", "queue_size"),
            ("vicreg", "--config.method.loss.sim_cooef=10.0", "sim_cooef")):
        out.append((f"{config}: {flag[9:]}", [f"--config=configs/{config}.py:fashion_mnist", flag], field, {}))
    syntax = os.path.join(scratch, "syntax_error.py")
    with open(syntax, "w") as f:
        f.write("def get_config(:\n")
    fm = "/usr/share/datasets/fashion-mnist"
    truncated = os.path.join(scratch, "fmnist_truncated")
    os.makedirs(truncated, exist_ok=True)
    for name in os.listdir(fm) if os.path.isdir(fm) else []:
        if name.endswith(".gz"):
            data = open(os.path.join(fm, name), "rb").read()
            with open(os.path.join(truncated, name), "wb") as f:
                f.write(data[: len(data) // 2] if name.startswith("train-images") else data)
    blocker = os.path.join(scratch, "a_file")
    open(blocker, "w").close()
    out += [
        ("--config: missing file", ["--config=configs/no_such.py"], "no_such.py", {}),
        ("--config: syntax error", [f"--config={syntax}"], "syntax", {}),
        ("--config.method.name", [f"--config={CONFIG}", "--config.method.name=vicregg"], "vicregg", {}),
        ("--config.data.name", [f"--config={CONFIG}", "--config.data.name=imagenet21k"], "imagenet21k", {}),
        ("--config.model.encoder", [f"--config={CONFIG}", "--config.model.encoder=vit_h"], "vit_h", {}),
        ("misspelt field", [f"--config={CONFIG}", "--config.optim.base_lrr=0.1"], "base_lrr", {}),
        ("wrong type", [f"--config={CONFIG}", "--config.optim.base_lr=fast"], "base_lr", {}),
        ("batch not divisible by the devices", [f"--config={CONFIG}", "--config.data.global_batch=250"],
         "divisible", {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}),
        ("truncated data file", [f"--config={CONFIG}"], "train-images",
         {"DUALITY_FASHION_MNIST_DIR": truncated}),
        ("missing data directory", [f"--config={CONFIG}"], "fashion",
         {"DUALITY_FASHION_MNIST_DIR": os.path.join(scratch, "nowhere")}),
        ("stray argument", [f"--config={CONFIG}", "extra"], "extra", {}),
        ("unknown flag", [f"--config={CONFIG}", "--stepz=3"], "stepz", {}),
        ("--mode=probe on a folder with no run", ["--mode=probe"], "duality workdir", {}),
        ("--mode=analyze on a folder with no run", ["--mode=analyze"], "duality workdir", {}),
        ("--mode=analyze --samples=0", ["--mode=analyze", "--samples=0"], "samples", {}),
        ("--mode=nonsense", ["--mode=nonsense"], "mode", {}),
    ]
    return out


def run_case(case, scratch: str, i: int) -> dict:
    name, args, expect, env_extra = case
    parent = os.path.join(scratch, f"case{i}")
    workdir = os.path.join(parent, "run")
    if name == "workdir is a file":
        workdir = os.path.join(scratch, "a_file", "run")
    elif name == "workdir not creatable":
        workdir = "/proc/duality-bad-input/run"
    env = dict(os.environ, JAX_PLATFORMS="cpu", **env_extra)
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    reads_a_run = any(a in ("--mode=probe", "--mode=analyze") for a in args)
    if reads_a_run:
        os.makedirs(workdir, exist_ok=True)  # an existing folder with no run in it
    r = subprocess.run([sys.executable, "-m", "duality.main", f"--workdir={workdir}", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    msg = next((line for line in r.stderr.splitlines() if line.startswith("error:")), r.stderr.strip()[-300:])
    untouched = os.listdir(workdir) == [] if reads_a_run else not os.path.exists(workdir)
    ok = r.returncode == 2 and msg.startswith("error:") and expect.lower() in msg.lower() and untouched
    return dict(name=name, args=" ".join(a for a in args if not a.startswith("--config=") or len(args) == 1),
                code=r.returncode, message=msg, untouched=untouched, ok=ok)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="", help="run only the cases whose name contains this")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "bad_inputs.md"))
    a = p.parse_args()
    scratch = tempfile.mkdtemp(prefix="duality-bad-inputs-")
    try:
        chosen = [c for c in cases(scratch) if a.only in c[0]]
        chosen.append(("workdir is a file", [f"--config={CONFIG}"], "a_file", {}))
        chosen.append(("workdir not creatable", [f"--config={CONFIG}"], "/proc", {}))
        with concurrent.futures.ThreadPoolExecutor(a.workers) as pool:
            rows = list(pool.map(lambda ic: run_case(ic[1], scratch, ic[0]), enumerate(chosen)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lines = ["# Bad input, case by case", "",
             "Generated by `python benchmarks/bad_inputs.py` (each case one run of `python -m duality.main` "
             "from a shell; a case passes when it exits 2 with an `error:` line naming the field, file or flag, "
             "and its workdir is left uncreated).", "",
             f"{sum(r['ok'] for r in rows)} of {len(rows)} cases pass.", "",
             "| case | input | exit | workdir untouched | message |", "|---|---|---|---|---|"]
    for r in rows:
        text = r["message"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r['name']}{'' if r['ok'] else ' **FAILS**'} | `{r['args']}` | {r['code']} | "
                     f"{'yes' if r['untouched'] else 'no'} | {text} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not a.only:
        with open(a.out, "w") as f:
            f.write(text)
        print(f"written: {a.out}")
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
