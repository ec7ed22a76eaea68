"""Every Python snippet and every shell command of the README runs as written (copy-paste test);
the shell commands and how each is run are described further down ("Shell commands").

Snippets run in order in one namespace (a later one uses ``u0`` from the tour). The only
substitutions are the stand-ins a reader brings: ``my_unet`` and a batch ``x, y`` for the IEL
snippet, and the shipped model for the run directory a reader would have trained. Snippets that
take minutes on a CPU run as written in the slow suite (``make test-all``); the fast suite runs
the tour on a 64x64 crop instead of 256x256 and skips PS/NLPE.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
#: What a reader brings: a trained run (here: the shipped model).
SUBSTITUTE = {'tvflownet.load("runs/sr32")': 'tvflownet.load("default")'}
#: The fast variant: a smaller image.
FAST = {"[:, :256, :256]": "[:, :64, :64]"}
#: Snippets (by a string they contain) that take minutes even then: PS and NLPE.
SLOW_ONLY = ("probabilistic_sparsification(g",)


#: What a reader brings for the IEL snippet: a network returning logits and a batch (pdeflow first,
#: as the README asks, so that this code does not change how torch is loaded).
STANDINS = """\
from pdeflow.iel import SegmentationUNet
import torch
torch.manual_seed(0)
my_unet = SegmentationUNet(in_channels=1, num_classes=2, width=4, depth=2)
x, y = torch.rand(2, 1, 16, 16), torch.randint(0, 2, (2, 16, 16))
"""


def snippets() -> list[str]:
    """The README's Python snippets, in order, as written."""
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def prepared_snippets(fast: bool = False) -> list[str]:
    """The snippets as they run: the reader's trained run replaced by the shipped model (and, with
    ``fast``, the smaller image and without PS/NLPE). Run them in order in one namespace, after
    :data:`STANDINS` (``benchmarks/readme_tour.py`` times them)."""
    out = []
    for code in snippets():
        if fast and any(s in code for s in SLOW_ONLY):
            continue
        for a, b in {**SUBSTITUTE, **(FAST if fast else {})}.items():
            code = code.replace(a, b)
        out.append(code)
    return out


def _run(fast: bool) -> None:
    ns: dict = {}
    exec(STANDINS, ns)
    for i, code in enumerate(prepared_snippets(fast)):
        exec(compile(code, f"README snippet {i}", "exec"), ns)


def test_the_readme_has_snippets():
    assert len(snippets()) >= 4 and all(a in "".join(snippets()) for a in [*SUBSTITUTE, *FAST])


def test_readme_snippets_run_on_a_small_image():
    _run(fast=True)


@pytest.mark.slow
def test_readme_snippets_run_as_written():
    _run(fast=False)


# ---------------------------------------------------------------------------------------------
# Shell commands: every line of the README's bash blocks runs as written, in a fresh temporary
# working directory (holding links to the repository's `benchmarks/` and `.data/`, as a clone's
# root does). How each one runs is declared in SPECS below, and every README command must match
# exactly one entry, so a new command needs a decision here:
#
# * fast: `pdeflow ...` lines that finish in seconds, run in this process through
#   `pdeflow.cli.main` (the `pdeflow` console script's function) with the words as written;
# * slow (`pytest -m slow`): run to the end by bash, as written, in a subprocess;
# * bounded (slow): training runs and experiments of CPU-hours. Run by bash as written until the
#   run has demonstrably trained (a `log.csv` with a row: steps done and logged), then interrupted;
#   the rest of such a run is the same loop;
# * make-dry / pip-dry: `make install`, `make test`, `make data`, `make photos` and the `pip install`
#   lines are NOT run (they install packages, run this suite, or download Debian packages). They
#   are checked instead: `make -n -C REPO TARGET` (the target exists and its recipe expands) and
#   `pip install ... --dry-run --no-index` (the requirements resolve offline, nothing installed);
# * make-run: `make run` runs its recipe's command (from `make -n run`) with this interpreter's
#   `pdeflow` in place of the one `make` would install into `.venv`.
#
# Placeholders are filled in the obvious way (IMAGE: a built-in image, DIR: a new folder), a
# word "a|b" gives one command per alternative, and `[...]` parts are given. Synopsis lines with
# "..." are not commands (their concrete forms follow in the README). What an earlier step would
# leave is put in place first: a finished run (`runs/sr32`, `runs/photos`, `runs/unet-data`: the shipped TVflowNET;
# `runs/masknet05`, `runs/residual`: the shipped mask network and residual inpainter; `runs/wgan`:
# a two-step `pdeflow train inpainting --stage wgan` run), a photo (`photo.png`) and a mask.
# ---------------------------------------------------------------------------------------------

ROOT = README.parent
PLACEHOLDERS = {"IMAGE": "builtin:skimage/camera", "DIR": "out", "DIR2": "out2", "RUN": "run",
                "MASK": "m/mask.png", "DIR/mask.png": "out/mask.png"}


def shell_lines() -> list[str]:
    """Every command line of the README's bash blocks (continuations joined, comments dropped)."""
    cmds = []
    for block in re.findall(r"^```bash\n(.*?)^```", README.read_text(), flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+", " ", re.split(r"\s+#\s", line)[0]).strip()
            if line:
                cmds.append(line)
    return cmds


def expand(line: str) -> list[str]:
    """The commands a README line stands for: [] for a synopsis ("..."), one per alternative of a
    word "a|b", with placeholders filled and optional ``[...]`` parts given."""
    if "..." in line:
        return []
    words = line.split(" ")
    alt = next((i for i, w in enumerate(words) if "|" in w and not w.startswith(("'", '"'))), None)
    choices = words[alt].split("|") if alt is not None else [None]
    out = []
    for choice in choices:
        ws = list(words)
        if alt is not None:
            ws[alt] = choice
        ws = [w if w.startswith(("'", '"')) else w.lstrip("[").rstrip("]") for w in ws]
        out.append(" ".join(PLACEHOLDERS.get(w, w) for w in ws))
    return out


def readme_commands() -> list[str]:
    return [c for line in shell_lines() for c in expand(line)]


@dataclass(frozen=True)
class Spec:
    kind: str                       # fast, slow, bounded, make-dry, pip-dry, make-run
    standins: tuple = ()            # what earlier steps or the reader bring (see above)
    needs: tuple = ()               # commands run first (their output is used)
    exit: int = 0                   # expected exit status
    data: str = ""                  # a folder under the repository the command reads (else: skip)


MASK_FIRST = ("pdeflow mask --density 0.1 --method analytic --out out",)
#: (regular expression matched against the expanded command, how it runs)
SPECS = [
    (r"^make run$", Spec("make-run")),
    (r"^make test$", Spec("make-dry")),
    (r"^make install && make data$", Spec("make-dry")),
    (r"^make photos$", Spec("make-dry")),
    (r"^pip install ", Spec("pip-dry")),
    (r"^pdeflow flow builtin:skimage/camera --times", Spec("slow")),
    (r"^pdeflow spectral ", Spec("slow")),
    (r"^pdeflow samples ", Spec("fast")),
    (r"^pdeflow demo ", Spec("slow")),
    (r"^pdeflow mask builtin:skimage/camera --density 0.1 --out out$", Spec("fast")),
    (r"^pdeflow inpaint builtin:skimage/camera --mask m/mask.png --out out$",
     Spec("fast", needs=("pdeflow mask --density 0.1 --out m",))),
    (r"^pdeflow train tvflownet .*--run-dir runs/(sr32|photos)$", Spec("bounded")),
    (r"^pdeflow train tvflownet .*--init runs/photos ", Spec("bounded", standins=("runs/photos",))),
    (r"^pdeflow evaluate tvflownet runs/sr32 ", Spec("slow", standins=("runs/sr32",))),
    (r"^pdeflow train tvflownet --arch unet --crop 32 .*--run-dir runs/unet32$",
     Spec("bounded", data=".data/photos/opencv")),
    (r"^pdeflow train tvflownet --arch unet --crop mixed .*--init runs/unet32/last.pt .*runs/unet32-coolmix128$",
     Spec("bounded", standins=("runs/unet32",), data=".data/photos/opencv")),
    (r"^pdeflow train tvflownet --arch unet --crop 32 .*--init runs/unet32-coolmix128 .*--run-dir runs/unet32-v3$",
     Spec("bounded", standins=("runs/unet32-coolmix128",), data=".data/photos/opencv")),
    (r"^pdeflow train tvflownet --arch unet --crop mixed .*--init runs/unet32-v3/last.pt .*runs/v3b-coolmix1k$",
     Spec("bounded", standins=("runs/unet32-v3",), data=".data/photos/opencv")),
    (r"^pdeflow train tvflownet --arch unet --arch-kwargs .*--init runs/v3b-coolmix1k .*runs/edge0-v3b$",
     Spec("bounded", standins=("runs/v3b-coolmix1k",), data=".data/photos/opencv")),
    (r"^pdeflow train tvflownet --arch unet --arch-kwargs .*--init runs/edge0-v3b .*runs/ref-dt01$",
     Spec("bounded", standins=("runs/edge0-v3b",), data=".data/photos/opencv")),
    (r"^pdeflow train tvflownet --arch unet --arch-kwargs .*--crop 32 .*--init runs/ref-dt01 "
     r".*--steps (4500|6750|8500|9500) .*runs/unet32-dt01$",
     Spec("bounded", standins=("runs/ref-dt01",), data=".data/photos/opencv")),
    (r"^pdeflow train tvflownet --arch unet --arch-kwargs .*--init runs/unet32-dt01/last.pt .*runs/dt01-c[2-5]$",
     Spec("bounded", standins=("runs/unet32-dt01",), data=".data/photos/opencv")),
    (r"^pdeflow train tvflownet-average runs/dt01-c2 runs/dt01-c3 runs/dt01-c4 runs/dt01-c5 ",
     Spec("fast", standins=("runs/dt01-c2", "runs/dt01-c3", "runs/dt01-c4", "runs/dt01-c5"))),
    (r"^pdeflow train tvflownet .*--data builtin \.data/photos/opencv .*--run-dir runs/unet-data$",
     Spec("bounded", data=".data/photos/opencv")),
    (r"^pdeflow evaluate tvflownet runs/unet-data .*--heldout-dir \.data/photos/mate-nature ",
     Spec("slow", standins=("runs/unet-data",), data=".data/photos/mate-nature")),
    (r"^pdeflow flow .*--method both --model runs/sr32 ", Spec("slow", standins=("runs/sr32",))),
    (r"^pdeflow iel-experiment --preset small --dataset dsb2018 ", Spec("slow")),
    (r"^pdeflow iel-experiment --dataset mricron ", Spec("bounded", data=".data/mricron-data")),
    (r"^pdeflow iel-experiment --mode sweep ", Spec("bounded")),
    (r"^pdeflow mask builtin:skimage/camera --density 0.1 --method (analytic|learned|random) ", Spec("fast")),
    (r"^pdeflow mask builtin:skimage/camera --density 0.1 --method (ps|nlpe) ", Spec("slow")),
    (r"^pdeflow mask builtin:skimage/camera --density 0.1 --method gan ", Spec("fast", exit=2)),
    (r"^pdeflow inpaint builtin:skimage/camera --mask out/mask.png --method (diffusion|learned) ",
     Spec("fast", needs=MASK_FIRST)),
    (r"^pdeflow inpaint builtin:skimage/camera --mask out/mask.png --method wgan ",
     Spec("fast", needs=MASK_FIRST, exit=2)),
    (r"^OMP_NUM_THREADS=1 python benchmarks/inpaint_masknet_train.py ", Spec("bounded", data=".data/photos/opencv")),
    (r"^pdeflow mask builtin:skimage/camera --size 64 --density 0.1 (--refine 12 )?--out ", Spec("fast")),
    (r"^pdeflow inpaint builtin:skimage/camera --size 64 --mask m/mask.png ",
     Spec("fast", needs=("pdeflow mask builtin:skimage/camera --size 64 --density 0.1 --out m/",))),
    (r"^pdeflow mask builtin:skimage/camera --size 64 --density 0.1 --method learned --model joint-10-mask ",
     Spec("fast")),
    (r"^pdeflow inpaint builtin:skimage/camera --size 64 --mask jm/mask.png ",
     Spec("fast", needs=("pdeflow mask builtin:skimage/camera --size 64 --density 0.1 --method learned "
                         "--model joint-10-mask --out jm/",))),
    (r"^OMP_NUM_THREADS=1 pdeflow evaluate inpainting ", Spec("slow")),
    (r"^pdeflow train masknet ", Spec("bounded")),
    (r"^pdeflow train residual --steps ", Spec("bounded")),
    (r"^pdeflow train residual --stage joint ", Spec("bounded", standins=("runs/masknet05", "runs/residual"))),
    (r"^pdeflow mask photo.png .*--model runs/masknet05 ", Spec("fast", standins=("photo.png", "runs/masknet05"))),
    (r"^pdeflow train inpainting --stage wgan ", Spec("bounded")),
    (r"^pdeflow train inpainting --stage mask .*--init runs/wgan ", Spec("bounded", standins=("runs/wgan",))),
]


def spec_of(cmd: str) -> Spec:
    found = [spec for pattern, spec in SPECS if re.search(pattern, cmd)]
    assert len(found) == 1, f"README command `{cmd}` matches {len(found)} entries of SPECS (need exactly one)"
    return found[0]


def _commands(*kinds: str) -> list[str]:
    return [c for c in readme_commands() if spec_of(c).kind in kinds]


def test_every_readme_command_is_declared_once():
    cmds = readme_commands()
    assert len(cmds) >= 40 and len(set(cmds)) == len(cmds)
    assert sum(line.startswith("pdeflow ") for line in shell_lines()) >= 25
    for c in cmds:
        spec_of(c)
    # every declaration is used: a README change that drops a command drops its entry too
    for pattern, _ in SPECS:
        assert any(re.search(pattern, c) for c in cmds), f"SPECS entry {pattern!r} matches no README command"


def test_placeholders_and_alternatives():
    assert expand("pdeflow train tvflownet|inpainting ... --run-dir RUN") == []
    assert expand("pdeflow samples [--out DIR]") == ["pdeflow samples --out out"]
    assert expand("pdeflow inpaint IMAGE --mask DIR/mask.png --method diffusion|wgan --out DIR2") == [
        "pdeflow inpaint builtin:skimage/camera --mask out/mask.png --method diffusion --out out2",
        "pdeflow inpaint builtin:skimage/camera --mask out/mask.png --method wgan --out out2"]
    assert expand('pip install -e ".[test]"') == ['pip install -e ".[test]"']


# ---- what earlier steps leave, what the reader brings


def _copy_model(src_stem: Path, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    for ext in (".json", ".safetensors"):
        shutil.copyfile(src_stem.with_suffix(ext), run_dir / f"model{ext}")


def _standin(name: str, cwd: Path) -> None:
    from pdeflow.inpaint.gan import WEIGHTS_DIR as INPAINT_WEIGHTS
    from pdeflow.tvflownet.api import WEIGHTS_DIR as TVFLOWNET_WEIGHTS

    if name in ("runs/sr32", "runs/photos"):             # Semi-ResNet runs in the README
        _copy_model(TVFLOWNET_WEIGHTS / "semiresnet", cwd / name)
    elif name in ("runs/unet32", "runs/unet32-v3"):    # stages 1 and 3 of the shipped U-Net: checkpoints to branch off
        assert _pdeflow("pdeflow train tvflownet --arch unet --crop 16 --steps 1 --batch-size 2 --val-crops 1 "
                        f"--val-size 16 --val-times 2 --ckpt-every 1 --quiet --run-dir {name}") == 0
    elif name == "runs/unet32-dt01":                   # stage 7 (edge_width 0): a checkpoint to branch off
        assert _pdeflow("pdeflow train tvflownet --arch unet --arch-kwargs '{\"edge_width\": 0}' --crop 16 --steps 1 "
                        f"--batch-size 2 --val-crops 1 --val-size 16 --val-times 2 --ckpt-every 1 --quiet "
                        f"--run-dir {name}") == 0
    elif name in ("runs/unet-data", "runs/unet32-coolmix128", "runs/v3b-coolmix1k", "runs/edge0-v3b",
                  "runs/ref-dt01", "runs/dt01-c2", "runs/dt01-c3", "runs/dt01-c4", "runs/dt01-c5"):
        _copy_model(TVFLOWNET_WEIGHTS / "unet", cwd / name)      # the shipped U-Net
    elif name == "runs/masknet05":
        _copy_model(INPAINT_WEIGHTS / "masknet-05", cwd / name)
    elif name == "runs/residual":
        _copy_model(INPAINT_WEIGHTS / "residual-inpainter", cwd / name)
    elif name == "runs/wgan":
        _pdeflow("pdeflow train inpainting --stage wgan --width 0.25 --batch-size 4 --crop 64 --steps 2 "
                 "--val-crops 4 --run-dir runs/wgan --quiet")
    elif name == "photo.png":
        from pdeflow import datasets, io
        io.write_image(cwd / name, datasets.builtin_image("skimage/astronaut")[:, :200, :300])
    else:
        raise AssertionError(f"no stand-in for {name}")


def _pdeflow(cmd: str) -> int:
    """Run a `pdeflow ...` command line in this process (the console script's function)."""
    from pdeflow.cli import main

    words = shlex.split(cmd)
    assert words[0] == "pdeflow", cmd
    return main(words[1:])


def _workdir(tmp_path: Path, spec: Spec) -> Path:
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "benchmarks").symlink_to(ROOT / "benchmarks")
    if spec.data:
        if not (ROOT / spec.data).exists():
            pytest.skip(f"needs {spec.data} (make data / make photos: Debian packages, downloaded)")
        (cwd / ".data").symlink_to(ROOT / ".data")
    return cwd


def _prepare(cwd: Path, spec: Spec, monkeypatch) -> None:
    monkeypatch.chdir(cwd)
    for name in spec.standins:
        _standin(name, cwd)
    for cmd in spec.needs:
        assert _pdeflow(cmd) == 0, cmd


@pytest.mark.parametrize("cmd", _commands("fast"), ids=str)
def test_readme_command_runs(cmd, tmp_path, monkeypatch, capsys):
    spec = spec_of(cmd)
    cwd = _workdir(tmp_path, spec)
    _prepare(cwd, spec, monkeypatch)
    before = set(cwd.rglob("*"))
    status = _pdeflow(cmd)
    err = capsys.readouterr().err
    assert status == spec.exit, f"`{cmd}` exited {status}: {err}"
    if spec.exit == 0:
        assert set(cwd.rglob("*")) - before, f"`{cmd}` wrote nothing"
    else:
        last = err.strip().splitlines()[-1]
        assert last.startswith("pdeflow ") and "error:" in last and "Traceback" not in err


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _bash(cmd: str, cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=_env(), stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _prepared(cmd: str, tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """The working directory of ``cmd``, prepared as its spec says, and the path of its log."""
    spec = spec_of(cmd)
    cwd = _workdir(tmp_path, spec)
    _prepare(cwd, spec, monkeypatch)
    return cwd, tmp_path / "log.txt"


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-15:])


@pytest.mark.slow
@pytest.mark.parametrize("cmd", _commands("slow"), ids=str)
def test_readme_command_runs_to_the_end(cmd, tmp_path, monkeypatch):
    cwd, log = _prepared(cmd, tmp_path, monkeypatch)
    before = set(cwd.rglob("*"))
    proc = _bash(cmd, cwd, log)
    assert proc.wait(timeout=3600) == spec_of(cmd).exit, f"`{cmd}`:\n{_tail(log)}"
    assert set(cwd.rglob("*")) - before, f"`{cmd}` wrote nothing"


def _trained(cwd: Path, old: set) -> bool:
    """A training run has logged a step: a ``log.csv`` below ``cwd``, other than those in ``old``
    (the stand-ins'), has a row."""
    return any(p not in old and len(p.read_text().strip().splitlines()) >= 2 for p in cwd.rglob("log.csv"))


@pytest.mark.slow
@pytest.mark.parametrize("cmd", _commands("bounded"), ids=str)
def test_readme_training_command_trains(cmd, tmp_path, monkeypatch):
    """Hours of training as written: it must start and train (a logged step) within 15 minutes; then
    it is terminated (SIGTERM), which `pdeflow` answers with its clean exit (status 143)."""
    cwd, log = _prepared(cmd, tmp_path, monkeypatch)
    old = set(cwd.rglob("log.csv"))
    proc = _bash(cmd, cwd, log)
    deadline = time.monotonic() + 900
    try:
        while not _trained(cwd, old):
            status = proc.poll()
            if status is not None:
                assert status == 0 and _trained(cwd, old), f"`{cmd}` stopped ({status}) before training:\n{_tail(log)}"
                return
            assert time.monotonic() < deadline, f"`{cmd}` logged no training step in 15 minutes:\n{_tail(log)}"
            time.sleep(2)
    finally:
        running = proc.poll() is None
        if running:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if running:
        assert proc.returncode == (143 if "pdeflow " in cmd else -signal.SIGTERM), \
            f"`{cmd}` did not stop cleanly on SIGTERM ({proc.returncode}):\n{_tail(log)}"


@pytest.mark.parametrize("cmd", _commands("make-dry"), ids=str)
def test_readme_make_command_dry_run(cmd):
    """Not run (installs packages, runs this suite, or downloads Debian packages): each target exists
    and its recipe expands (`make -n`)."""
    for part in cmd.split("&&"):
        words = part.split()
        assert words[0] == "make" and len(words) == 2, cmd
        r = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), words[1]], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, f"`{part.strip()}`: {r.stderr}"


@pytest.mark.parametrize("cmd", _commands("pip-dry"), ids=str)
def test_readme_pip_command_dry_run(cmd):
    """Not run (it would install packages): `pip install ... --dry-run --no-index` from the repository
    root resolves the requirements offline against what is installed and installs nothing."""
    words = shlex.split(cmd)
    assert words[:2] == ["pip", "install"], cmd
    extra = ["--dry-run", "--no-index"] + (["--no-build-isolation"] if "-e" in words else [])
    r = subprocess.run([sys.executable, "-m", "pip", *words[1:], *extra], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, f"`{cmd}`: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    assert "Would install" in r.stdout or "already satisfied" in r.stdout


@pytest.mark.slow
@pytest.mark.parametrize("cmd", _commands("make-run"), ids=str)
def test_readme_make_run(cmd, tmp_path):
    """`make run`: the recipe `make -n run` prints, with this interpreter's `pdeflow` for the one
    `make` installs into .venv, run in a temporary folder."""
    r = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), "run", "OUT=out/demo"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    recipe = r.stdout.strip().splitlines()[-1]
    assert recipe.startswith(".venv/bin/pdeflow "), recipe
    recipe = recipe.replace(".venv/bin/pdeflow", shlex.quote(str(Path(sys.executable).parent / "pdeflow")), 1)
    log = tmp_path / "log.txt"
    assert _bash(recipe, tmp_path, log).wait(timeout=1800) == 0, _tail(log)
    assert any((tmp_path / "out" / "demo").iterdir())


# ---------------------------------------------------------------------------------------------
# Benchmark commands in the README's text (minutes to CPU-hours each; each script's docstring
# says how long): every one is accepted by its script as written, up to the point where the
# script opens its --out folder (`_results.open_out`, right after parsing), which is stopped.
# ---------------------------------------------------------------------------------------------


def benchmark_commands() -> list[str]:
    text = README.read_text()
    return [" ".join(m.split()) for m in re.findall(r"`((?:OMP_NUM_THREADS=1 )?python\s+benchmarks/[^`]*)`", text)]


class _Parsed(Exception):
    pass


def test_the_readme_has_benchmark_commands():
    assert len(benchmark_commands()) >= 10


@pytest.mark.parametrize("cmd", benchmark_commands(), ids=str)
def test_readme_benchmark_command_is_accepted(cmd, tmp_path, monkeypatch):
    import importlib.util

    words = shlex.split(cmd)
    words = words[words.index("python") + 1:]
    fill = {"DIR": str(tmp_path / "out"), "RUN": str(tmp_path / "run"), "RUN...": str(tmp_path / "run"),
            "WGAN_RUN": str(tmp_path / "run"), "B": "1", "S": "1"}
    argv = [fill.get(w.strip("[]"), w.strip("[]")) for w in words[1:]]
    (tmp_path / "run").mkdir()                       # a training run directory, as the reader's
    (tmp_path / "run" / "log.csv").write_text("step,wall_time,val_psnr\n0,1.0,30.0\n")
    script = ROOT / words[0]
    assert script.is_file(), cmd
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"_readme_bench_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)     # dataclasses look their module up
    spec.loader.exec_module(module)

    def stop(args, *a, **k):
        raise _Parsed(args)

    monkeypatch.setattr(module, "open_out", stop)
    with pytest.raises(_Parsed):
        module.main(argv)
