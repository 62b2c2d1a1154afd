"""Create one virtualenv per peer library under ``benchmarks/.venvs/`` and install it there.

Each venv sees the main environment's packages (torch 2.13 CPU, TensorFlow, Keras) through a
``.pth`` file placed *after* its own site-packages, so a peer's own pins win inside its venv and
nothing large is downloaded again; ``torch==2.13.0`` is passed as a constraint so pip never
replaces torch with a CUDA build. A peer that fails to install is recorded with pip's error.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"

# name -> (pip requirements, module to import as the smoke check)
PEERS: dict[str, tuple[list[str], str]] = {
    "deepctr_torch": (["deepctr-torch"], "deepctr_torch"),
    "fuxictr": (["fuxictr"], "fuxictr"),
    "deepctr": (["deepctr", "tf-keras"], "deepctr"),
    "keras_rs": (["keras-rs"], "keras_rs"),
    "torchrec": (["torchrec"], "torchrec"),
}
CONSTRAINTS = ["torch==2.13.0"]


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def _run(cmd: list[str], log) -> int:
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    return subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)


def setup_peer(name: str) -> dict:
    reqs, module = PEERS[name]
    env_dir = VENVS / name
    VENVS.mkdir(parents=True, exist_ok=True)
    log_path = VENVS / f"{name}.log"
    with open(log_path, "w") as log:
        if not venv_python(name).exists():
            rc = _run([sys.executable, "-m", "venv", str(env_dir)], log)
            if rc:
                return {"peer": name, "ok": False, "error": f"venv creation failed (rc {rc})"}
        site = subprocess.check_output(
            [str(venv_python(name)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True).strip()
        Path(site, "zz_main_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        cons = VENVS / "constraints.txt"
        cons.write_text("\n".join(CONSTRAINTS) + "\n")
        rc = _run([str(venv_python(name)), "-m", "pip", "install", "-q", "-c", str(cons), *reqs], log)
    tail = log_path.read_text()[-1500:]
    if rc:
        return {"peer": name, "ok": False, "error": f"pip install failed (rc {rc}): {tail}"}
    probe = subprocess.run(
        [str(venv_python(name)), "-c",
         f"import {module}, torch; print(getattr({module}, '__version__', '?'), torch.__version__)"],
        capture_output=True, text=True, env={"TF_USE_LEGACY_KERAS": "1", "PATH": "/usr/bin:/bin"})
    if probe.returncode:
        return {"peer": name, "ok": False, "error": "import failed: " + probe.stderr[-1500:]}
    return {"peer": name, "ok": True, "version": probe.stdout.strip()}


def setup_all(names: list[str] | None = None) -> list[dict]:
    out = []
    for name in names or list(PEERS):
        res = setup_peer(name)
        print(json.dumps(res)[:400], flush=True)
        out.append(res)
    (VENVS / "setup.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    setup_all(sys.argv[1:] or None)
