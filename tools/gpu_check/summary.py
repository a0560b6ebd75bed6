"""The GPU check's summary page, ``summary.md``: the device, the versions, each check's result,
the timings and their ratios, as Markdown tables (`markdown`), from the dict the check keeps
in ``summary.json`` (see docs/gpu.md for its keys)."""
from __future__ import annotations

import math
from pathlib import Path


def _fmt(x, unit: str = "", digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, (int, float)):
        if unit == "s":
            if x < 1e-3:
                return f"{x * 1e6:.{digits}g} µs"
            if x < 1:
                return f"{x * 1e3:.{digits}g} ms"
            return f"{x:.{digits}g} s"
        return f"{x:.{digits}g}{unit}"
    return str(x)


def markdown(s: dict) -> str:
    title = {"no_cuda": "no CUDA device", "passed": "passed", "failed": "FAILED", "running": "running"}
    lines = [f"# gradest GPU check{' (CPU rehearsal)' if s.get('rehearsal') else ''}: "
             f"{title.get(s['status'], s['status'])}", ""]
    if s.get("rehearsal"):
        lines += ["**Rehearsal on the CPU: no GPU was used. These numbers prove the check's plumbing, not the "
                  "GPU.**", ""]
    if s["status"] == "no_cuda":
        lines += [f"No CUDA device: {s.get('reason', '')}. Nothing GPU-bound ran.", ""]
    lines += [f"Started {s['started']}, {s.get('elapsed_s', 0):.0f} s of a {s['budget_s']:.0f} s budget. "
              f"Folder: `{s['out']}`.", ""]
    dev, versions, machine = s.get("device", {}), s.get("versions", {}), s.get("machine", {})
    lines += ["## Machine", "", "| | |", "|---|---|"]
    smi = (dev.get("nvidia_smi") or {}).get("gpus") or []
    for gpu in smi:
        lines.append(f"| GPU | {gpu['name']}, {gpu['memory']}, compute capability {gpu['compute_capability']}, "
                     f"driver {gpu['driver']} |")
    lines.append(f"| host | {machine.get('hostname', '')}: {machine.get('platform', '')}, "
                 f"{machine.get('cpu_count', '')} CPUs |")
    lines.append(f"| python | {versions.get('python', '')} at `{machine.get('executable', '')}` |")
    probe_ = dev.get("probe", {})
    t, j = probe_.get("torch", {}), probe_.get("jax", {})
    if versions.get("torch"):
        extra = f", CUDA {t.get('cuda_build')}" if t.get("cuda_build") else ", CPU build"
        if t.get("device_name"):
            extra += f", sees {t['device_name']} (sm {t.get('capability')}, cuDNN {t.get('cudnn')})"
        lines.append(f"| torch | {versions['torch']}{extra} |")
    if versions.get("jax"):
        plugins = ", ".join(f"{k} {v}" for k, v in versions.items() if k.startswith("jax-cuda"))
        extra = f", sees {', '.join(j['gpus'])}" if j.get("gpus") else ""
        lines.append(f"| jax | {versions['jax']} (jaxlib {versions.get('jaxlib')}{', ' + plugins if plugins else ''})"
                     f"{extra} |")
    for name in ("optax", "numpy", "pandas", "scikit-learn", "seaborn", "rich", "asv", "pytest", "pytest-xdist"):
        if versions.get(name):
            lines.append(f"| {name} | {versions[name]} |")
    g = s.get("gradest", {})
    if g:
        git = g.get("git", {})
        commit = git.get("commit") or git.get("note", "")
        mode = g.get("import", {}).get("mode")
        lines.append(f"| gradest | {versions.get('gradest') or g.get('version', '')} at `{g.get('root', '')}`, "
                     f"{commit}{' (uncommitted changes)' if git.get('dirty') else ''}"
                     f"{'; ' + mode if mode else ''} |")
    lines += ["", "## Checks", "", "| check | result | seconds | detail |", "|---|---|---|---|"]
    for name, c in s.get("checks", {}).items():
        lines.append(f"| {name} | {c.get('status', '')} | {_fmt(c.get('seconds'), digits=4)} | "
                     f"{str(c.get('detail', c.get('mode', ''))).replace('|', '/')} |")
    failed = [t for t in s.get("checks", {}).get("pytest", {}).get("tests", [])
              if t["outcome"] in ("failed", "error")]
    if failed:
        lines += ["", "### Failed tests", ""]
        lines += [f"* `{t['name']}`: {t['message'][:300].replace(chr(10), ' ')}" for t in failed[:40]]
    lines += _markdown_timings(s.get("timings") or {})
    lines += ["", "## Files", ""] + [f"* `{name}`: {what}" for name, what in FILES.items()
                                      if (Path(s["out"]) / name).exists()] + [""]
    return "\n".join(lines)


#: what the check may leave in its folder
FILES = {
    "summary.json": "everything on this page, every test and every timing",
    "summary.md": "this page",
    "probe.json": "what torch and jax say about the device",
    "install.log": "the installation of gradest (or asv's wheels)",
    "pytest.log": "the output of pytest -m gpu",
    "pytest.xml": "its JUnit XML",
    "timings.json": "every timing, per round",
    "timings.log": "the output of the timings",
    "asv.log": "the output of asv",
    "asv/results": "asv's results (`gradest report <folder>/asv/results`, or asv publish with asv/asv.conf.json)",
}


def _cell(entry: dict) -> str:
    """A timing's median, or why there is none."""
    if "median_s" in entry:
        return _fmt(entry["median_s"], "s")
    return str(entry.get("error") or entry.get("skipped") or "—").replace("|", "/")


def _markdown_timings(t: dict) -> list[str]:
    lines = []
    vae = t.get("categorical_vae_step")
    if vae:
        data = vae.get("data", {})
        lines += ["", f"## categorical_vae training step ({vae.get('estimator')}, S = 1)", "",
                  f"Data: {data.get('note', '—')}. {vae.get('protocol', '')}.", "",
                  "| batch | framework | gradest | hand-written | gradest / hand-written (rounds' range) | "
                  "first step: gradest, hand-written |", "|---|---|---|---|---|---|"]
        for row in vae.get("rows", []):
            if "error" in row or "skipped" in row:
                lines.append(f"| {row.get('batch_size')} | {row.get('mode', '')} | "
                             f"{row.get('error') or row.get('skipped')} | | | |")
                continue
            lines.append(f"| {row['batch_size']} | {row['mode']} | {_fmt(row['gradest_s'], 's')} | "
                         f"{_fmt(row['handwritten_s'], 's')} | {row['ratio']:.2f} "
                         f"({row['round_ratio_min']:.2f}–{row['round_ratio_max']:.2f}) | "
                         f"{_fmt(row['gradest_first_step_s'], 's')}, {_fmt(row['handwritten_first_step_s'], 's')} |")
        notes = {row.get("note") for row in vae.get("rows", []) if row.get("note")}
        lines += [f"\n{n}." for n in notes]
    bandit = t.get("bandit_reinforce")
    if bandit:
        device = t.get("device", "cuda")
        lines += ["", f"## REINFORCE on the {bandit['arms']}-armed bandit: R = {bandit['replicates']:,} estimates "
                      f"per call (`GradientSampler.run`)", "",
                  f"| backend | CPU | {device} | CPU / {device} | CPU threads | first call CPU, {device} |",
                  "|---|---|---|---|---|---|"]
        for backend, row in bandit.get("rows", {}).items():
            cpu, acc = row.get("cpu", {}), row.get(device, {})
            if device == "cpu":
                acc = cpu
            lines.append(f"| {backend} | {_cell(cpu)} | {_cell(acc)} | "
                         f"{_fmt(row.get('cpu_over_gpu'), '×')} | {cpu.get('threads', '—')} | "
                         f"{_fmt(cpu.get('first_call_s'), 's')}, {_fmt(acc.get('first_call_s'), 's')} |")
    return lines
