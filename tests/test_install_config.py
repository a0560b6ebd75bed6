"""Where torch comes from, in `make venv` and in asv's history environments.

On the default package index, ``torch==2.13.0`` for Linux is the CUDA build (it pulls the nvidia
libraries, several GB); PyTorch's CPU index offers ``2.13.0+cpu``. Both the Makefile and
asv.conf.json add PyTorch's CPU index for torch, and rely on pip preferring ``2.13.0+cpu``
over ``2.13.0`` when the constraint is ``torch==2.13.0`` (a local version label sorts after the
public version). This machine cannot reach that index, so the test stands two local indexes in
for the two real ones: one with a "CUDA" torch 2.13.0 that requires an nvidia package, one with
torch 2.13.0+cpu, and asks pip (``--dry-run --report``, no configuration) what it would install.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _asv_conf() -> dict:
    from asv import util

    return util.load_json(str(ROOT / "asv.conf.json"), js_comments=True)


def test_make_venv_and_asv_take_torch_from_the_cpu_index():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^TORCH_INDEX \?= {re.escape(CPU_INDEX)}$", makefile, re.M)
    assert "--extra-index-url $(TORCH_INDEX) torch" in makefile
    conf = _asv_conf()
    assert "torch" not in conf["matrix"]["req"]  # the matrix cannot name an index
    torch_step = [c for c in conf["install_command"] if " torch==" in c]
    assert torch_step and f"--extra-index-url {CPU_INDEX}" in torch_step[0]
    pinned = re.search(r"torch==(\S+)", torch_step[0]).group(1)
    assert f"torch=={pinned}" in (ROOT / "constraints-cpu.txt").read_text().split()


def test_asv_environments_install_the_example_plugin():
    conf = _asv_conf()
    plugin = [c for c in conf["install_command"] if "examples/gradest-antithetic" in c]
    assert plugin and "{build_dir}/examples/gradest-antithetic" in plugin[0]
    assert (ROOT / "examples" / "gradest-antithetic" / "pyproject.toml").is_file()
    # after the project's wheel: the plugin installs without dependencies, next to it
    assert conf["install_command"].index(plugin[0]) > next(
        i for i, c in enumerate(conf["install_command"]) if "{wheel_file}" in c)


def _wheel(folder: Path, version: str, requires: list[str]) -> None:
    """A minimal pure-Python wheel of a package named torch, in a simple-index folder."""
    (folder / "torch").mkdir(parents=True)
    name = f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    meta = "Metadata-Version: 2.1\nName: torch\nVersion: {}\n{}".format(
        version, "".join(f"Requires-Dist: {r}\n" for r in requires))
    with zipfile.ZipFile(folder / "torch" / name, "w") as zf:
        zf.writestr(f"{info}/METADATA", meta)
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    (folder / "torch" / "index.html").write_text(f'<html><body><a href="{name}">{name}</a></body></html>')


def _resolve(tmp_path: Path, *index_args: str) -> str:
    report = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.json"
    cmd = [sys.executable, "-m", "pip", "--isolated", "install", "--dry-run", "--ignore-installed", "--no-deps",
           "--quiet", "--report", str(report), "-c", str(ROOT / "constraints-cpu.txt"), *index_args, "torch"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and "no such option: --report" in done.stderr:
        pytest.skip("this pip has no --report")
    assert done.returncode == 0, done.stderr
    install = json.loads(report.read_text())["install"]
    assert [item["metadata"]["name"] for item in install] == ["torch"]
    return install[0]["metadata"]["version"]


def test_pip_prefers_the_cpu_build_when_the_cpu_index_is_added(tmp_path):
    default, cpu = tmp_path / "default", tmp_path / "cpu"
    _wheel(default, "2.13.0", ["nvidia-cublas-cu12"])  # as the default index's Linux torch
    _wheel(cpu, "2.13.0+cpu", [])
    # the default index alone: the CUDA build (what the issue saw)
    assert _resolve(tmp_path, "--index-url", default.as_uri()) == "2.13.0"
    # with the CPU index added as the Makefile and asv.conf.json add it: the CPU build
    assert _resolve(tmp_path, "--index-url", default.as_uri(), "--extra-index-url", cpu.as_uri()) == "2.13.0+cpu"
