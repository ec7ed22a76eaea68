"""The bad-input table: every bad input a user may give the CLI or the Python API, and what it must do.

CLI cases run in-process (``pdeflow.cli.main``) and must end with exit status 2 and one
``pdeflow ...: error: ...`` line naming the argument (or the file), no traceback, and nothing new
in ``--out`` (or ``--run-dir``). API cases must raise a ``ValueError``-family error whose one-line
message names the argument or file. Every case fails before any long computation (the inputs are
tiny), so the table stays fast.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from pdeflow.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "pdeflow" / "tvflownet" / "weights"


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A tiny PNG whose header claims w x h pixels (a decompression bomb's shape)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8))
                     + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Good and bad input files, made once for the whole table."""
    from pdeflow.io import write_image

    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    write_image(d / "good.png", torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(0)))
    write_image(d / "good40.png", torch.rand(1, 40, 40, generator=torch.Generator().manual_seed(1)))
    write_image(d / "mask32.png", (torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(2)) < 0.2).float())
    write_image(d / "mask20.png", (torch.rand(1, 20, 20, generator=torch.Generator().manual_seed(2)) < 0.2).float())
    write_image(d / "grey32.png", torch.full((1, 32, 32), 0.5))                 # not a binary mask
    write_image(d / "empty_mask32.png", torch.zeros(1, 32, 32))                 # no known pixel
    (d / "text.png").write_text("not an image")
    (d / "empty.png").write_bytes(b"")
    (d / "truncated.png").write_bytes((d / "good.png").read_bytes()[:60])
    flipped = bytearray((d / "good.png").read_bytes())
    flipped[40] ^= 0xFF
    (d / "bitflip.png").write_bytes(bytes(flipped))
    _png_header_only(d / "bomb.png", 100000, 100000)
    (d / "notes.txt").write_text("hello")
    (d / "image.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage")
    a = rng.random((16, 16)).astype(np.float32)
    a[2, 3] = np.nan
    tifffile.imwrite(d / "nan.tif", a)
    a[2, 3] = np.inf
    tifffile.imwrite(d / "inf.tif", a)
    tifffile.imwrite(d / "pages.tif", rng.random((3, 16, 16)).astype(np.float32), photometric="minisblack")
    with tifffile.TiffWriter(d / "mixed_pages.tif") as tw:     # a stack (a volume) of unequal slices
        tw.write(rng.random((16, 16)).astype(np.float32))
        tw.write(rng.random((8, 16)).astype(np.float32))
    tifffile.imwrite(d / "float_range.tif", 7 * rng.random((16, 16)).astype(np.float32))
    tifffile.imwrite(d / "fourd.tif", rng.random((2, 2, 16, 16)).astype(np.float32))
    (d / "a_dir").mkdir()
    (d / "empty_dir").mkdir()
    (d / "afile").write_text("I am a file")
    # model exports: shipped copy, mismatch, corrupt, missing halves
    shutil.copy(SHIPPED / "default.json", d / "ok.json")
    shutil.copy(SHIPPED / "default.safetensors", d / "ok.safetensors")
    meta = json.loads((SHIPPED / "default.json").read_text())
    meta["config"]["model"]["width"] = 8
    (d / "mismatch.json").write_text(json.dumps(meta))
    shutil.copy(SHIPPED / "default.safetensors", d / "mismatch.safetensors")
    meta = json.loads((SHIPPED / "default.json").read_text())
    meta["config"]["model"]["arch"] = "nonsense"
    (d / "badarch.json").write_text(json.dumps(meta))
    shutil.copy(SHIPPED / "default.safetensors", d / "badarch.safetensors")
    (d / "corrupt.json").write_text('{"format": "pdeflow-model", "config": ')
    shutil.copy(SHIPPED / "default.safetensors", d / "corrupt.safetensors")
    (d / "list.json").write_text("[1, 2, 3]")
    shutil.copy(SHIPPED / "default.safetensors", d / "list.safetensors")
    shutil.copy(SHIPPED / "default.json", d / "noweights.json")
    shutil.copy(SHIPPED / "default.safetensors", d / "nojson.safetensors")
    shutil.copy(SHIPPED / "default.json", d / "badweights.json")
    (d / "badweights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    shutil.copy(SHIPPED / "default.json", d / "emptyweights.json")
    (d / "emptyweights.safetensors").write_bytes(b"")
    # run directories holding something else
    rd = d / "notarun"
    rd.mkdir()
    (rd / "config.json").write_text("{broken")
    # existing outputs of each command
    for sub, names in {"flow_done": ["u_t0.10.png"], "mask_done": ["mask.png"], "inpaint_done": ["inpainted.png"],
                       "spectral_done": ["residual.png"], "demo_done": ["demo.png"],
                       "samples_done": ["samples.png"], "evaltv_done": ["report.md"],
                       "evalinp_done": ["report.md"]}.items():
        (d / sub).mkdir()
        for n in names:
            shutil.copy(d / "mask32.png", d / sub / n)  # an image: also usable as an input
    return d


#: A bad input must be refused before any long computation: a case still running after this long has
#: started working on the input instead of refusing it.
CASE_SECONDS = 30


@contextlib.contextmanager
def _time_limit(seconds):
    def stop(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: the bad input was not refused up front")
    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _listing(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------
# The CLI table: (argv, word the error line must contain)
# {d} is the corpus, {o} a fresh output directory under the test's tmp_path.
# ---------------------------------------------------------------------------

F = ["flow", "{d}/good.png", "--times", "0.1"]          # a flow that would succeed
S = ["spectral", "{d}/good.png"]
M = ["mask", "{d}/good.png", "--density", "0.1", "--method", "random"]
INP = ["inpaint", "{d}/good.png", "--mask", "{d}/mask32.png"]
TT = ["train", "tvflownet", "--steps", "1"]
TI = ["train", "inpainting", "--steps", "1"]
ET = ["evaluate", "tvflownet"]
EI = ["evaluate", "inpainting"]
IEL = ["iel-experiment", "--preset", "small"]

CLI_CASES = [
    # ---- input images (flow) ----
    (["flow", "{d}/missing.png", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/text.png", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/empty.png", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/truncated.png", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/bitflip.png", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/bomb.png", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/notes.txt", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/image.jpg", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/nan.tif", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/inf.tif", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/mixed_pages.tif", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/fourd.tif", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/float_range.tif", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/a_dir", "--out", "{o}"], "IMAGE"),
    (["flow", "{d}/afile/x.png", "--out", "{o}"], "IMAGE"),
    (["flow", "builtin:nope/none", "--out", "{o}"], "IMAGE"),
    (["flow", "builtin:", "--out", "{o}"], "IMAGE"),
    (["flow", "skimage/camera", "--out", "{o}"], "IMAGE"),
    (["flow", "", "--out", "{o}"], "IMAGE"),
    # ---- numbers and choices (flow) ----
    (F + ["--size", "0", "--out", "{o}"], "--size"),
    (F + ["--size", "-3", "--out", "{o}"], "--size"),
    (F + ["--size", "33", "--out", "{o}"], "--size"),
    (F + ["--size", "1.5", "--out", "{o}"], "--size"),
    (F + ["--size", "ten", "--out", "{o}"], "--size"),
    (["flow", "--times", "-1", "2", "--out", "{o}"], "--times"),
    (["flow", "--times", "1", "0.5", "--out", "{o}"], "--times"),
    (["flow", "--times", "0.5", "0.2", "--out", "{o}"], "--times"),
    (["flow", "--times", "nan", "--out", "{o}"], "--times"),
    (["flow", "--times", "inf", "--out", "{o}"], "--times"),
    (["flow", "--times", "abc", "--out", "{o}"], "--times"),
    (F + ["--dt", "0", "--out", "{o}"], "--dt"),
    (F + ["--dt", "-0.1", "--out", "{o}"], "--dt"),
    (F + ["--dt", "nan", "--out", "{o}"], "--dt"),
    (F + ["--dt", "inf", "--out", "{o}"], "--dt"),
    (F + ["--tol", "0", "--out", "{o}"], "--tol"),
    (F + ["--tol", "-1e-3", "--out", "{o}"], "--tol"),
    (F + ["--tol", "x", "--out", "{o}"], "--tol"),
    (F + ["--scale", "0", "--out", "{o}"], "--scale"),
    (F + ["--scale", "-2", "--out", "{o}"], "--scale"),
    (F + ["--scale", "nan", "--out", "{o}"], "--scale"),
    (F + ["--solver", "magic", "--out", "{o}"], "--solver"),
    (F + ["--method", "neural", "--out", "{o}"], "--method"),
    (F + ["--device", "gpu7", "--out", "{o}"], "--device"),
    (F + ["--device", "cuda:0", "--out", "{o}"], "--device"),
    (F + ["--threads", "0", "--out", "{o}"], "--threads"),
    (F + ["--threads", "-1", "--out", "{o}"], "--threads"),
    (F + ["--grey", "--colour", "--out", "{o}"], "--colour"),
    (F + ["--bogus", "--out", "{o}"], "--bogus"),
    (["flow", "--times", "0.1", "{d}/good.png", "--out", "{o}"], "--times"),
    # ---- models (flow --method net) ----
    (F + ["--method", "net", "--model", "nonexistent", "--out", "{o}"], "--model"),
    (F + ["--method", "net", "--model", "{d}/missing.json", "--out", "{o}"], "--model"),
    (F + ["--method", "net", "--model", "{d}/mismatch.json", "--out", "{o}"], "mismatch.json"),
    (F + ["--method", "net", "--model", "{d}/mismatch.safetensors", "--out", "{o}"], "mismatch"),
    (F + ["--method", "net", "--model", "{d}/badarch.json", "--out", "{o}"], "badarch.json"),
    (F + ["--method", "net", "--model", "{d}/corrupt.json", "--out", "{o}"], "corrupt.json"),
    (F + ["--method", "net", "--model", "{d}/list.json", "--out", "{o}"], "list.json"),
    (F + ["--method", "net", "--model", "{d}/noweights.json", "--out", "{o}"], "noweights"),
    (F + ["--method", "net", "--model", "{d}/nojson.safetensors", "--out", "{o}"], "nojson"),
    (F + ["--method", "net", "--model", "{d}/badweights.json", "--out", "{o}"], "badweights"),
    (F + ["--method", "net", "--model", "{d}/emptyweights.json", "--out", "{o}"], "emptyweights"),
    (F + ["--method", "net", "--model", "{d}/good.png", "--out", "{o}"], "--model"),
    (F + ["--method", "net", "--model", "{d}/a_dir", "--out", "{o}"], "--model"),
    (F + ["--method", "both", "--model", "{d}/mismatch.json", "--out", "{o}"], "mismatch.json"),
    (F + ["--method", "net", "--model", "default", "--colour", "--out", "{o}"], "--colour"),
    (F + ["--model", "default", "--out", "{o}"], "--model"),
    # ---- outputs (flow) ----
    (F + ["--out", "{d}/afile"], "--out"),
    (F + ["--out", "{d}/afile/sub"], "--out"),
    (F + ["--out", "{d}/afile/sub/deeper"], "--out"),
    (F + ["--out", "/proc/pdeflow-out"], "--out"),
    (F + ["--out", "{d}/flow_done"], "--out"),
    (["flow", "{d}/flow_done/u_t0.10.png", "--times", "0.1", "--out", "{d}/flow_done", "--overwrite"], "--out"),
    (F, "--out"),                                          # --out is required
    # ---- spectral ----
    (S + ["--dt", "0", "--out", "{o}"], "--dt"),
    (S + ["--dt", "-1", "--out", "{o}"], "--dt"),
    (S + ["--steps", "0", "--out", "{o}"], "--steps"),
    (S + ["--steps", "-4", "--out", "{o}"], "--steps"),
    (S + ["--steps", "2.5", "--out", "{o}"], "--steps"),
    (S + ["--bands", "0.3", "--out", "{o}"], "--bands"),
    (S + ["--bands", "0.3", "0.1", "--out", "{o}"], "--bands"),
    (S + ["--bands", "-0.1", "0.3", "--out", "{o}"], "--bands"),
    (S + ["--bands", "0.01", "0.02", "0.5", "--out", "{o}"], "--bands"),
    (S + ["--bands", "0.1", "inf", "--out", "{o}"], "--bands"),
    (S + ["--tol", "0", "--out", "{o}"], "--tol"),
    (S + ["--solver", "nope", "--out", "{o}"], "--solver"),
    (S + ["--size", "64", "--out", "{o}"], "--size"),
    (["spectral", "{d}/text.png", "--out", "{o}"], "IMAGE"),
    (["spectral", "{d}/bomb.png", "--out", "{o}"], "IMAGE"),
    (["spectral", "{d}/mixed_pages.tif", "--out", "{o}"], "IMAGE"),
    (S + ["--out", "{d}/afile/sub"], "--out"),
    (S + ["--out", "{d}/afile"], "--out"),
    (S + ["--out", "{d}/spectral_done"], "--out"),
    # ---- samples / demo ----
    (["samples", "--out", "{d}/afile"], "--out"),
    (["samples", "--out", "{d}/afile/sub"], "--out"),
    (["samples", "--out", "{d}/samples_done"], "--out"),
    (["demo", "--out", "{d}/afile"], "--out"),
    (["demo", "--out", "{d}/afile/sub"], "--out"),
    (["demo", "--out", "{d}/demo_done"], "--out"),
    (["demo", "--threads", "0", "--out", "{o}"], "--threads"),
    (["demo", "--device", "tpu", "--out", "{o}"], "--device"),
    (["demo"], "--out"),
    # ---- mask ----
    (["mask", "{d}/good.png", "--out", "{o}"], "--density"),
    (M[:-2] + ["--density", "0", "--out", "{o}"], "--density"),
    (M[:3] + ["--density", "1", "--out", "{o}"], "--density"),
    (M[:3] + ["--density", "1.5", "--out", "{o}"], "--density"),
    (M[:3] + ["--density", "-0.1", "--out", "{o}"], "--density"),
    (M[:3] + ["--density", "nan", "--out", "{o}"], "--density"),
    (M[:3] + ["--density", "half", "--out", "{o}"], "--density"),
    (M[:4] + ["--method", "magic", "--out", "{o}"], "--method"),
    (M + ["--metric", "psnr", "--out", "{o}"], "--metric"),
    (M + ["--seed", "-1", "--out", "{o}"], "--seed"),
    (M + ["--seed", "x", "--out", "{o}"], "--seed"),
    (M[:4] + ["--method", "ps", "--p", "0", "--out", "{o}"], "--p"),
    (M[:4] + ["--method", "ps", "--p", "1.5", "--out", "{o}"], "--p"),
    (M[:4] + ["--method", "ps", "--q", "0", "--out", "{o}"], "--q"),
    (M[:4] + ["--method", "ps", "--q", "-0.5", "--out", "{o}"], "--q"),
    (M[:4] + ["--method", "nlpe", "--cycles", "0", "--out", "{o}"], "--cycles"),
    (M[:4] + ["--method", "nlpe", "--candidates", "0", "--out", "{o}"], "--candidates"),
    (M[:4] + ["--method", "nlpe", "--parallel", "0", "--out", "{o}"], "--parallel"),
    (M[:4] + ["--method", "gan", "--model", "{d}/missing", "--out", "{o}"], "--model"),
    (M[:4] + ["--method", "gan", "--model", "{d}/corrupt.json", "--out", "{o}"], "corrupt"),
    (M[:4] + ["--method", "gan", "--model", "{d}/ok.json", "--out", "{o}"], "--model"),
    (M[:4] + ["--method", "gan", "--model", "{d}/empty_dir", "--out", "{o}"], "--model"),
    (M + ["--tol", "0", "--out", "{o}"], "--tol"),
    (M + ["--size", "64", "--out", "{o}"], "--size"),
    (M + ["--device", "cuda:9", "--out", "{o}"], "--device"),
    (["mask", "{d}/text.png", "--density", "0.1", "--out", "{o}"], "IMAGE"),
    (["mask", "{d}/missing.png", "--density", "0.1", "--out", "{o}"], "IMAGE"),
    (["mask", "{d}/nan.tif", "--density", "0.1", "--out", "{o}"], "IMAGE"),
    (M + ["--out", "{d}/afile"], "--out"),
    (M + ["--out", "{d}/afile/sub"], "--out"),
    (M + ["--out", "{d}/mask_done"], "--out"),
    (["mask", "{d}/mask_done/mask.png", "--density", "0.1", "--method", "random", "--out", "{d}/mask_done",
      "--overwrite"], "--out"),
    # ---- inpaint ----
    (["inpaint", "{d}/good.png", "--out", "{o}"], "--mask"),
    (INP[:3] + ["{d}/missing.png", "--out", "{o}"], "--mask"),
    (INP[:3] + ["{d}/mask20.png", "--out", "{o}"], "--mask"),
    (INP[:3] + ["{d}/text.png", "--out", "{o}"], "--mask"),
    (INP[:3] + ["{d}/empty_mask32.png", "--out", "{o}"], "--mask"),
    (INP[:3] + ["{d}/bomb.png", "--out", "{o}"], "--mask"),
    (INP[:3] + ["{d}/a_dir", "--out", "{o}"], "--mask"),
    (INP + ["--method", "magic", "--out", "{o}"], "--method"),
    (INP + ["--method", "wgan", "--model", "{d}/missing", "--out", "{o}"], "--model"),
    (INP + ["--method", "wgan", "--model", "{d}/corrupt.json", "--out", "{o}"], "corrupt"),
    (INP + ["--method", "wgan", "--model", "{d}/ok.json", "--out", "{o}"], "--model"),
    (INP + ["--method", "wgan", "--model", "{d}/notarun", "--out", "{o}"], "notarun"),
    (INP + ["--tol", "-1", "--out", "{o}"], "--tol"),
    (INP + ["--seed", "-3", "--out", "{o}"], "--seed"),
    (INP + ["--size", "64", "--out", "{o}"], "--size"),
    (["inpaint", "{d}/text.png", "--mask", "{d}/mask32.png", "--out", "{o}"], "IMAGE"),
    (["inpaint", "{d}/mixed_pages.tif", "--mask", "{d}/mask32.png", "--out", "{o}"], "IMAGE"),
    (INP + ["--out", "{d}/afile"], "--out"),
    (INP + ["--out", "{d}/afile/sub"], "--out"),
    (INP + ["--out", "{d}/inpaint_done"], "--out"),
    (["inpaint", "{d}/inpaint_done/inpainted.png", "--mask", "{d}/mask32.png", "--out", "{d}/inpaint_done",
      "--overwrite"], "--out"),
    # ---- train tvflownet ----
    (TT, "--run-dir"),
    (TT + ["--run-dir", "{d}/afile"], "--run-dir"),
    (TT + ["--run-dir", "{d}/afile/sub"], "--run-dir"),
    (TT + ["--run-dir", "{d}/notarun"], "--run-dir"),
    (TT + ["--steps", "0", "--run-dir", "{o}"], "--steps"),
    (TT + ["--steps", "-5", "--run-dir", "{o}"], "--steps"),
    (TT + ["--arch", "resnet", "--run-dir", "{o}"], "--arch"),
    (TT + ["--arch-kwargs", "{{width: 8", "--run-dir", "{o}"], "--arch-kwargs"),
    (TT + ["--arch-kwargs", "[1, 2]", "--run-dir", "{o}"], "--arch-kwargs"),
    (TT + ["--arch-kwargs", '{{"colour": 3}}', "--run-dir", "{o}"], "--arch-kwargs"),
    (TT + ["--data", "{d}/missing", "--run-dir", "{o}"], "--data"),
    (TT + ["--data", "{d}/afile", "--run-dir", "{o}"], "--data"),
    (TT + ["--data", "{d}/empty_dir", "--run-dir", "{o}"], "--data"),
    (TT + ["--val-data", "{d}/missing", "--run-dir", "{o}"], "--val-data"),
    (TT + ["--synthetic", "1.5", "--run-dir", "{o}"], "--synthetic"),
    (TT + ["--synthetic", "-0.1", "--run-dir", "{o}"], "--synthetic"),
    (TT + ["--init", "{d}/corrupt.json", "--run-dir", "{o}"], "corrupt.json"),
    (TT + ["--init", "{d}/mismatch.json", "--run-dir", "{o}"], "mismatch.json"),
    (TT + ["--init", "{d}/missing.json", "--run-dir", "{o}"], "--init"),
    (TT + ["--init", "nonexistent", "--run-dir", "{o}"], "--init"),
    (TT + ["--init", "{d}/good.png", "--run-dir", "{o}"], "--init"),
    (TT + ["--crop", "1", "--run-dir", "{o}"], "--crop"),
    (TT + ["--batch-size", "0", "--run-dir", "{o}"], "--batch-size"),
    (TT + ["--batch-size", "5", "--times-per-image", "2", "--run-dir", "{o}"], "--times-per-image"),
    (TT + ["--scale", "0", "--run-dir", "{o}"], "--scale"),
    (TT + ["--t-max", "-1", "--run-dir", "{o}"], "--t-max"),
    (TT + ["--mode", "semi", "--run-dir", "{o}"], "--mode"),
    (TT + ["--loss", "l2", "--run-dir", "{o}"], "--loss"),
    (TT + ["--lr", "0", "--run-dir", "{o}"], "--lr"),
    (TT + ["--lr", "-1", "--run-dir", "{o}"], "--lr"),
    (TT + ["--clip", "-1", "--run-dir", "{o}"], "--clip"),
    (TT + ["--hybrid-fraction", "2", "--run-dir", "{o}"], "--hybrid-fraction"),
    (TT + ["--ut-method", "exact", "--run-dir", "{o}"], "--ut-method"),
    (TT + ["--phi-target", "x", "--run-dir", "{o}"], "--phi-target"),
    (TT + ["--val-times", "1", "--run-dir", "{o}"], "--val-times"),
    (TT + ["--ref-dt", "0", "--run-dir", "{o}"], "--ref-dt"),
    (TT + ["--device", "gpu", "--run-dir", "{o}"], "--device"),
    (TT + ["--threads", "0", "--run-dir", "{o}"], "--threads"),
    # ---- train inpainting ----
    (TI, "--run-dir"),
    (TI + ["--run-dir", "{d}/afile"], "--run-dir"),
    (TI + ["--run-dir", "{d}/afile/sub"], "--run-dir"),
    (TI + ["--run-dir", "{d}/notarun"], "--run-dir"),
    (TI + ["--stage", "both", "--run-dir", "{o}"], "--stage"),
    (TI + ["--steps", "0", "--run-dir", "{o}"], "--steps"),
    (TI + ["--crop", "30", "--run-dir", "{o}"], "--crop"),
    (TI + ["--channels", "2", "--run-dir", "{o}"], "--channels"),
    (TI + ["--density-min", "0.5", "--density-max", "0.1", "--run-dir", "{o}"], "--density"),
    (TI + ["--density-max", "1.5", "--run-dir", "{o}"], "--density-max"),
    (TI + ["--init", "{d}/a_dir", "--run-dir", "{o}"], "--init"),
    (TI + ["--stage", "mask", "--init", "{d}/a_dir", "--run-dir", "{o}"], "--init"),
    (TI + ["--stage", "mask", "--init", "{d}/notarun", "--run-dir", "{o}"], "notarun"),
    (TI + ["--stage", "mask", "--density", "0", "--run-dir", "{o}"], "--density"),
    (TI + ["--data", "{d}/missing", "--run-dir", "{o}"], "--data"),
    (TI + ["--lr", "0", "--run-dir", "{o}"], "--lr"),
    (TI + ["--width", "0", "--run-dir", "{o}"], "--width"),
    (TI + ["--batch-size", "-1", "--run-dir", "{o}"], "--batch-size"),
    # ---- evaluate tvflownet ----
    (ET + ["--n-times", "5", "--out", "{o}"], "--n-times"),
    (ET + ["--n-times", "0", "--out", "{o}"], "--n-times"),
    (ET + ["--tables", "8", "--out", "{o}"], "--tables"),
    (ET + ["--tables", "x", "--out", "{o}"], "--tables"),
    (ET + ["--sizes", "5", "--out", "{o}"], "--sizes"),
    (ET + ["--sizes", "0", "--out", "{o}"], "--sizes"),
    (ET + ["--n-images", "0", "--out", "{o}"], "--n-images"),
    (ET + ["--t-max", "-1", "--out", "{o}"], "--t-max"),
    (ET + ["--dt", "0", "--out", "{o}"], "--dt"),
    (ET + ["--tol", "0", "--out", "{o}"], "--tol"),
    (ET + ["--solver", "magic", "--out", "{o}"], "--solver"),
    (ET + ["--medical-split", "val", "--out", "{o}"], "--medical-split"),
    (ET + ["--image-dir", "{d}/missing", "--out", "{o}"], "--image-dir"),
    (ET + ["--image-dir", "{d}/afile", "--out", "{o}"], "--image-dir"),
    (ET + ["--medical-dir", "{d}/missing", "--out", "{o}"], "--medical-dir"),
    (ET + ["--timing-repeats", "0", "--out", "{o}"], "--timing-repeats"),
    (ET + ["--device", "cuda:3", "--out", "{o}"], "--device"),
    (ET + ["{d}/mismatch.json", "--out", "{o}"], "mismatch.json"),
    (ET + ["{d}/corrupt.json", "--out", "{o}"], "corrupt.json"),
    (ET + ["{d}/missing.json", "--out", "{o}"], "missing.json"),
    (ET + ["nonexistent", "--out", "{o}"], "nonexistent"),
    (ET + ["--out", "{d}/afile"], "--out"),
    (ET + ["--out", "{d}/afile/sub"], "--out"),
    (ET + ["--out", "{d}/evaltv_done"], "--out"),
    # ---- evaluate inpainting ----
    (EI + ["--densities", "0", "--out", "{o}"], "--densities"),
    (EI + ["--densities", "1.2", "--out", "{o}"], "--densities"),
    (EI + ["--methods", "magic", "--out", "{o}"], "--methods"),
    (EI + ["--n-images", "0", "--out", "{o}"], "--n-images"),
    (EI + ["--size", "5", "--out", "{o}"], "--size"),
    (EI + ["--channels", "2", "--out", "{o}"], "--channels"),
    (EI + ["--image-dir", "{d}/missing", "--out", "{o}"], "--image-dir"),
    (EI + ["--metric", "psnr", "--out", "{o}"], "--metric"),
    (EI + ["--tol", "0", "--out", "{o}"], "--tol"),
    (EI + ["--ps-p", "0", "--out", "{o}"], "--ps-p"),
    (EI + ["--inpainting-model", "{d}/missing", "--out", "{o}"], "--inpainting-model"),
    (EI + ["--mask-models", "{d}/missing", "--out", "{o}"], "--mask-models"),
    (EI + ["--out", "{d}/afile"], "--out"),
    (EI + ["--out", "{d}/afile/sub"], "--out"),
    (EI + ["--out", "{d}/evalinp_done"], "--out"),
    # ---- iel-experiment ----
    (IEL, "--out"),
    (IEL + ["--out", "{d}/afile"], "--out"),
    (IEL + ["--out", "{d}/afile/sub"], "--out"),
    (IEL + ["--out", "{d}/notarun"], "--out"),
    (IEL + ["--mode", "grid", "--out", "{o}"], "--mode"),
    (IEL + ["--preset", "huge", "--out", "{o}"], "--preset"),
    (IEL + ["--shard", "3/2", "--out", "{o}"], "--shard"),
    (IEL + ["--shard", "x", "--out", "{o}"], "--shard"),
    (IEL + ["--dataset", "mnist", "--out", "{o}"], "--dataset"),
    (IEL + ["--dataset", "mricron", "--data-path", "{d}/missing", "--out", "{o}"], "--data-path"),
    (IEL + ["--noise", "gauss", "--out", "{o}"], "--noise"),
    (IEL + ["--noise-keep", "1.5", "--out", "{o}"], "--noise-keep"),
    (IEL + ["--dt", "0", "--out", "{o}"], "--dt"),
    (IEL + ["--layers", "0", "--out", "{o}"], "--layers"),
    (IEL + ["--operator", "wave", "--out", "{o}"], "--operator"),
    (IEL + ["--boundary", "periodic", "--out", "{o}"], "--boundary"),
    (IEL + ["--crop", "30", "--depth", "5", "--out", "{o}"], "--crop"),
    (IEL + ["--epochs", "0", "--out", "{o}"], "--epochs"),
    (IEL + ["--lr", "-1", "--out", "{o}"], "--lr"),
    (IEL + ["--optimizer", "sgd", "--out", "{o}"], "--optimizer"),
    # ---- top level ----
    (["nonsense"], "nonsense"),
    (["train"], "MODEL"),
    (["train", "resnet", "--run-dir", "{o}"], "resnet"),
    (["evaluate", "everything"], "everything"),
]


def _case_id(argv):
    return " ".join(a.replace("{d}/", "").replace("{o}", "OUT") for a in argv)[:90]


@pytest.mark.parametrize("argv,name", CLI_CASES, ids=[_case_id(a) for a, _ in CLI_CASES])
def test_cli_bad_input(corpus, tmp_path, capsys, argv, name):
    out = tmp_path / "out"
    argv = [a.format(d=corpus, o=out) for a in argv]
    before = _listing(corpus)
    with _time_limit(CASE_SECONDS):
        status = main(argv)
    cap = capsys.readouterr()
    err = cap.err
    assert status == 2, (status, err[-2000:])
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("pdeflow")]
    assert lines and "error:" in lines[-1], err
    last = lines[-1]
    assert name in last, err
    assert "\n" not in last
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))  # nothing in --out
    assert _listing(corpus) == before  # no existing file changed, none added


# ---------------------------------------------------------------------------
# The API table: (callable, word the message must contain)
# ---------------------------------------------------------------------------

def _api_cases():
    from pdeflow import iel, metrics, tv, tvflownet
    from pdeflow import inpaint as inp
    from pdeflow import io as pio

    u = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    m = (torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    nan = u.clone()
    nan[0, 1, 1] = float("nan")
    return [
        # tv
        (lambda d: tv.tv_flow(u, [0.1], dt=0), "dt"),
        (lambda d: tv.tv_flow(u, [0.1], dt=-1), "dt"),
        (lambda d: tv.tv_flow(u, [0.1], tol=0), "tol"),
        (lambda d: tv.tv_flow(u, [-0.1]), "times"),
        (lambda d: tv.tv_flow(u, [0.5, 0.1]), "times"),
        (lambda d: tv.tv_flow(u, [0.1], method="magic"), "method"),
        (lambda d: tv.tv_flow(nan, [0.1]), "u0"),
        (lambda d: tv.tv_flow(torch.rand(16), [0.1]), "u0"),
        (lambda d: tv.rof(u, -1.0), "lam"),
        (lambda d: tv.rof(u, 0.1, method="magic"), "method"),
        (lambda d: tv.rof(u, 0.1, tol=-1), "tol"),
        (lambda d: tv.rof(u, 0.1, max_iter=0), "max_iter"),
        (lambda d: tv.rof(nan, 0.1), "NaN"),
        (lambda d: tv.spectral_tv(u, dt=0, n_steps=4), "dt"),
        (lambda d: tv.spectral_tv(u, dt=0.1, n_steps=0), "n_steps"),
        # metrics
        (lambda d: metrics.psnr(u, u[:, :8]), "shape"),
        (lambda d: metrics.ssim(u, u[:, :8]), "shape"),
        (lambda d: metrics.ssim(u[:, :5, :5], u[:, :5, :5]), "window"),
        (lambda d: metrics.psnr(u, u, data_range=0), "data_range"),
        (lambda d: metrics.mse(u, u[:, :4]), "shape"),
        # io
        (lambda d: pio.read_image(d / "missing.png"), "missing.png"),
        (lambda d: pio.read_image(d / "text.png"), "text.png"),
        (lambda d: pio.read_image(d / "empty.png"), "empty.png"),
        (lambda d: pio.read_image(d / "truncated.png"), "truncated.png"),
        (lambda d: pio.read_image(d / "bomb.png"), "bomb.png"),
        (lambda d: pio.read_image(d / "pages.tif"), "pages.tif"),
        (lambda d: pio.read_image(d / "a_dir"), "a_dir"),
        (lambda d: pio.read_image(d / "good.png", rescale="magic"), "rescale"),
        (lambda d: pio.write_image(d / "good.png", u), "good.png"),              # exists, no overwrite
        (lambda d: pio.write_image(d / "afile" / "x.png", u), "afile"),
        (lambda d: pio.write_image(d / "new.png", u, bits=12), "bits"),
        (lambda d: pio.write_image(d / "new.png", torch.rand(2, 4, 4)), "shape"),
        (lambda d: pio.load_model(d / "corrupt.json"), "corrupt.json"),
        (lambda d: pio.load_model(d / "list.json"), "list.json"),
        (lambda d: pio.load_model(d / "badweights.json"), "badweights"),
        (lambda d: pio.load_model(d / "emptyweights.json"), "emptyweights"),
        (lambda d: pio.load_model(d / "missing.json"), "missing"),
        # tvflownet
        (lambda d: tvflownet.load(str(d / "mismatch.json")), "mismatch.json"),
        (lambda d: tvflownet.load(str(d / "badarch.json")), "badarch.json"),
        (lambda d: tvflownet.load(str(d / "corrupt.json")), "corrupt.json"),
        (lambda d: tvflownet.load(str(d / "noweights.json")), "noweights"),
        (lambda d: tvflownet.load("nonexistent"), "nonexistent"),
        (lambda d: tvflownet.build_model("resnet"), "resnet"),
        (lambda d: tvflownet.flow(u, [-1.0]), "times"),
        # inpaint
        (lambda d: inp.inpaint_diffusion(u, m[:, :8]), "mask"),
        (lambda d: inp.inpaint_diffusion(u, torch.zeros_like(m)), "mask"),
        (lambda d: inp.inpaint_diffusion(u, m, tol=0), "tol"),
        (lambda d: inp.random_mask((16, 16), 0.0), "density"),
        (lambda d: inp.random_mask((16, 16), 1.5), "density"),
        (lambda d: inp.ps_mask(u, 0.0), "density"),
        (lambda d: inp.ps_mask(u, 0.1, p=0), "p"),
        (lambda d: inp.nlpe_mask(u, m[:, :8]), "mask"),
        (lambda d: inp.load_wgan(d / "missing"), "missing"),
        (lambda d: inp.load_mask_gan(d / "corrupt.json"), "corrupt"),
        # iel
        (lambda d: iel.make_operator("wave"), "wave"),
        (lambda d: iel.block_noise(torch.zeros(1, 8, 8, dtype=torch.long), 2, size=0), "size"),
    ]


API_CASES = _api_cases()


@pytest.mark.parametrize("i", range(len(API_CASES)))
def test_api_bad_input(corpus, i):
    fn, name = API_CASES[i]
    # ValueError for a bad value; the OSError family for a missing file, a directory given for a file or
    # an existing file not to be overwritten (Python's own convention); never anything else.
    with pytest.raises((ValueError, OSError)) as exc:
        fn(corpus)
    msg = str(exc.value)
    assert name in msg, msg
    assert "\n" not in msg.strip(), msg


def test_the_table_is_big_enough():
    assert len(CLI_CASES) + len(API_CASES) >= 150


def test_unwritable_out_is_refused_before_the_computation(corpus, tmp_path, monkeypatch, capsys):
    """An --out that cannot be created is refused before the flow is computed, not after."""
    from pdeflow.cli import flow as cli_flow

    def never(*a, **k):
        raise AssertionError("the computation ran")

    monkeypatch.setattr(cli_flow, "tv_flow", never)
    assert main(F[:1] + [F[1].format(d=corpus)] + F[2:] + ["--out", str(corpus / "afile" / "sub")]) == 2
    assert "--out" in capsys.readouterr().err
