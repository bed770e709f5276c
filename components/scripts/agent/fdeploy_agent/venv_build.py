"""The venv build, run by install.py as the app's build user in a sandboxed transient unit, from
stdin: `python3 -I -B - MODE VENV PIPVENV SEED` (standalone: the build user cannot read the bundle).
  pip   PIPVENV: the app's one pip (a venv with pip), built once, read-only to every later build
  venv  VENV without a pip of its own; the requirements (requirements.txt of the working directory)
        installed by the app's pip through pip's runner script under VENV's python (what `pip
        --python` does, 0.2 s sooner; a pip older than 22.3 has no runner: then VENV gets its own
        pip). SEED ("-": none) is a built venv whose requirements VENV's only add to: VENV starts as a
        copy of its packages (times kept, so their .pyc stay valid) and console scripts (their first
        line pointed at VENV's python), and pip installs only what was added.
The marker VENV/.fdeploy-built is written last: without it the venv is half built."""
import glob
import os
import shutil
import subprocess
import sys
from typing import List, Optional

MARK = ".fdeploy-built"


def site_packages(venv: str) -> Optional[str]:
    found = sorted(glob.glob(os.path.join(glob.escape(venv), "lib", "python3*", "site-packages")))
    return found[0] if found else None


def pip_runner(pipvenv: str) -> Optional[str]:
    if not os.path.isfile(os.path.join(pipvenv, MARK)):
        return None
    sp = site_packages(pipvenv)
    runner = os.path.join(sp, "pip", "__pip-runner__.py") if sp else ""
    return runner if runner and os.path.isfile(runner) else None


def copy_seed(seed: str, venv: str) -> None:
    src, dest = site_packages(seed), site_packages(venv)
    if src is None or dest is None:
        raise SystemExit("no site-packages in %s or %s" % (seed, venv))
    shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    old, new = ("#!%s/bin/" % seed).encode(), ("#!%s/bin/" % venv).encode()
    for name in sorted(os.listdir(os.path.join(seed, "bin"))):
        f, n = os.path.join(seed, "bin", name), os.path.join(venv, "bin", name)
        if os.path.lexists(n) or os.path.islink(f):
            continue
        with open(f, "rb") as fh:
            data = fh.read()
        if data.startswith(old):
            with open(n, "wb") as fh:
                fh.write(new + data[len(old):])
            os.chmod(n, 0o755)
        else:
            shutil.copy2(f, n)


def run(argv: List[str]) -> None:
    r = subprocess.run(argv, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SystemExit(r.returncode)


def main(argv: List[str]) -> int:
    mode, venv, pipvenv, seed = argv
    if mode == "pip":
        run(["python3", "-m", "venv", "--clear", pipvenv])
    else:
        runner = pip_runner(pipvenv)
        if runner:
            run(["python3", "-m", "venv", "--without-pip", venv])
            if seed != "-":
                copy_seed(seed, venv)
            run([os.path.join(venv, "bin", "python"), runner, "install", "-q", "-r", "requirements.txt"])
        else:
            run(["python3", "-m", "venv", venv])
            run([os.path.join(venv, "bin", "pip"), "install", "-q", "-r", "requirements.txt"])
    open(os.path.join(pipvenv if mode == "pip" else venv, MARK), "w").close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
