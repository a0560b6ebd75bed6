"""The GPU check's command line, ``python -m tools.gpu_check`` (``make gpu-check``): the options,
and the steps in their order (`orchestrate`; the package docstring and docs/gpu.md describe
them). The hidden ``--_stage probe|timings`` runs one step's own process."""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from . import importable  # first: gradest from the source tree when the check asks for it
from .asv import run_asv
from .probe import FRAMEWORKS, git_info, machine_info, no_cuda_reason, nvidia_smi, package_versions, probe
from .process import ROOT, run_logged, say
from .stages import DEFAULT_BUDGET, REHEARSAL_BUDGET, GpuCheckRun, run_pytest, run_timings
from .summary import markdown
from .timings import timings_stage

STAGES = ("pytest", "timings", "asv")


def default_out() -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return ROOT / "results" / "gpu-check" / stamp


def _probe_device(run: GpuCheckRun) -> str | None:
    """Run the probe in its own process and record what it says; why there is no usable
    device, or None."""
    s, out = run.summary, run.out
    result = run_logged([sys.executable, "-m", "tools.gpu_check", "--_stage", "probe", "--out", str(out),
                         "--_device", run.device], log=out / "probe.log", timeout=120, env=run.env)
    probe_path = out / "probe.json"
    info = json.loads(probe_path.read_text(encoding="utf-8")) if probe_path.exists() else {}
    s["device"]["probe"] = info
    usable = [b for b in FRAMEWORKS if info.get(b, {}).get("device_ok")]
    s["device"]["backends"] = usable
    if result["rc"] != 0 and not info:
        return f"the probe failed (exit {result['rc']}; see probe.log)"
    if not usable:
        why = "; ".join(f"{b}: {info.get(b, {}).get('error') or info.get(b, {}).get('gpu_error') or 'no device'}"
                        for b in FRAMEWORKS)
        return f"an NVIDIA driver is present, but neither torch nor jax sees a CUDA device ({why})"
    name = info.get("torch", {}).get("device_name") or ", ".join(info.get("jax", {}).get("gpus", []))
    s["device"]["name"] = "CPU (rehearsal)" if run.rehearse else name
    return None


def orchestrate(args) -> int:
    rehearse = bool(args.rehearse)
    budget = float(args.budget or (REHEARSAL_BUDGET if rehearse else DEFAULT_BUDGET))
    out = Path(args.out).resolve() if args.out else default_out()
    out.mkdir(parents=True, exist_ok=True)
    run = GpuCheckRun(out, budget, rehearse)
    s = run.summary
    say(f"writing to {out}")
    s["machine"] = machine_info()
    s["versions"] = package_versions()
    s["device"] = {"nvidia_smi": nvidia_smi()}
    import gradest

    s["gradest"] = {"version": gradest.__version__, "root": str(ROOT), "git": git_info()}
    reason = None if rehearse else no_cuda_reason()
    if reason is None:
        reason = _probe_device(run)
    if reason is not None:
        s.update({"status": "no_cuda", "cuda": False, "reason": reason})
        for stage in STAGES:
            s["checks"][stage] = {"status": "skipped", "detail": "no CUDA device"}
        run.write()
        say(f"no CUDA device: {reason}. Nothing GPU-bound ran; summary in {out / 'summary.md'}")
        return 0
    s["cuda"] = not rehearse
    missing = [b for b in FRAMEWORKS if b not in s["device"]["backends"]]
    if missing:
        s["device"]["missing"] = f"{', '.join(missing)} sees no {run.device} device: its GPU tests and timings skip"
    say(f"device: {s['device'].get('name')}; backends on it: {', '.join(s['device']['backends'])}")

    imported = importable.ensure_importable(run, allow_install=not args.no_install)
    s["gradest"]["import"] = imported
    run.record("import", {"status": imported["status"], "mode": imported["mode"],
                          "detail": imported["mode"] + ("; " + "; ".join(imported.get("notes", []))
                                                        if imported.get("notes") else "")})
    source_finder = bool(imported.get("source_finder"))
    if imported["status"] != "passed":
        for stage in STAGES:
            s["checks"][stage] = {"status": "skipped", "detail": "gradest is not importable"}
    else:
        only = set(args.only.split(",")) if args.only else set(STAGES)
        if "pytest" in only:
            run.record("pytest", run_pytest(run, run.cap("pytest", budget), source_finder))
        if "timings" in only:
            run.record("timings", run_timings(run, run.cap("timings", budget), args.mnist_dir))
        if "asv" in only:
            run.record("asv", run_asv(run, run.cap("asv", budget), args.asv_scope, args.wheels, source_finder))
    bad = [k for k, c in s["checks"].items() if c.get("status") in ("failed", "timeout")]
    s["status"] = "failed" if bad else "passed"
    run.write()
    print(markdown(s), flush=True)
    say(f"{s['status']}" + (f" ({', '.join(bad)})" if bad else "") + f"; summary in {out / 'summary.md'}")
    return 1 if bad else 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.gpu_check",
                                description="Check every CUDA path of gradest on this machine (see docs/gpu.md).")
    p.add_argument("--out", help="folder of the summary, logs and asv results (default results/gpu-check/<time>)")
    p.add_argument("--budget", type=float, help=f"seconds for the whole check (default {DEFAULT_BUDGET})")
    p.add_argument("--wheels", help="folder of carried wheels for asv (default $GRADEST_WHEELS, .whl/)")
    p.add_argument("--mnist-dir", help="folder of MNIST's IDX files or mnist.npz (default $GRADEST_MNIST_DIR, "
                                       "~/.keras/datasets)")
    p.add_argument("--asv-scope", choices=("core", "all", "none"), default="core",
                   help="which cuda rows of the asv suites run (default core)")
    p.add_argument("--only", help="comma-separated stages to run: pytest, timings, asv (default all)")
    p.add_argument("--no-install", action="store_true",
                   help="never pip-install gradest; use a finder for the source tree (asv is then skipped)")
    p.add_argument("--rehearse", action="store_true",
                   help="run the steps with the CPU standing in for the GPU (proves the plumbing, not the GPU)")
    p.add_argument("--_stage", help=argparse.SUPPRESS)
    p.add_argument("--_device", help=argparse.SUPPRESS)
    p.add_argument("--_seconds", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._stage == "probe":
        (Path(args.out) / "probe.json").write_text(json.dumps(probe(args._device or "cuda"), indent=2),
                                                   encoding="utf-8")
        return 0
    if args._stage == "timings":
        return timings_stage(Path(args.out), args._device or "cuda", float(args._seconds or 120), args.mnist_dir,
                             small=bool(args.rehearse))
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
