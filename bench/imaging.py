"""Benchmark filing and showing a 50 MB ultrasound clip against plain baselines, in the same run.

    .venv/bin/python bench/imaging.py [--frames 105] [--width 800] [--height 600] [--repeat 5]

Makes a throwaway registry (a temporary STRIDE_HOME with a fresh SQLite
database, ``stride migrate``), then in a fresh process with that environment
builds a multi-frame ultrasound clip with :func:`stride.core.phantoms.ultrasound`
(by default 800 × 600 × 105 frames, 8 bits, uncompressed Explicit VR Little
Endian: 50.4 MB) and files it under one patient. Not counted. Then it times,
each part the best of --repeat runs:

* upload: ``services.store`` (``inspect`` of the whole file, the identity and
  date checks, the SHA-256, writing the original to the ``images`` storage,
  the row); between runs the image is deleted again, untimed;
* the first thumbnail (240 px), a cache miss right after the upload: the
  original read back from the storage, one frame rendered, the PNG cached;
* a web rendition (1400 px) of frame k, cold (renditions forgotten first)
  and cached (asked for again);
* ten different frames rendered cold one after the other, at web size;
* ``core.imaging.inspect`` alone, on the bytes in memory.

And the baselines, in the same process: (A) writing the same bytes untouched
to the same storage (``storage.save``), and (B) ``pydicom.dcmread`` of the
stored original plus ``pydicom.pixels.pixel_array(ds, index=k)``: the least a
program must do to show one frame of that file. Each Stride figure is printed
with its ratio to its baseline (upload to A, the rest to B; ten frames to ten
times B).

It also checks what it timed: the stored original is byte for byte the clip;
the image has the clip's frames, size and pixel spacing; the thumbnail is a
PNG whose longer side is 240 px; the full-size rendition of frame k matches
that frame of the file (a correlation above 0.99, and closer to it than to
its neighbours). It exits non-zero when a check fails or a part misses its
goal: upload under 2 s, the first thumbnail under 1 s, a cold web frame under
0.3 s (ten frames under 3 s), a cached one under 0.05 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

#: part -> (goal in seconds, baseline it is compared with, label)
PARTS = {
    "upload": (2.0, "write", "upload (store: inspect + write)"),
    "thumbnail": (1.0, "frame", "first thumbnail, 240 px (miss)"),
    "web_cold": (0.3, "frame", "web frame k, 1400 px (miss)"),
    "web_cached": (0.05, "frame", "web frame k again (cached)"),
    "ten_frames": (3.0, "ten", "10 other frames, web (misses)"),
    "inspect": (None, "frame", "inspect alone"),
}
BASELINES = {
    "write": "(A) storage.save of the same bytes",
    "frame": "(B) dcmread + pixel_array(index=k)",
    "ten": "10 × (B)",
}


# --------------------------------------------------------------------------- the measuring process


def measure(frames: int, width: int, height: int, repeat: int, frame_k: int) -> dict[str, Any]:
    """Run in the child process (settings from the environment); the timings and checks as a dict."""
    import datetime as dt
    import hashlib
    import io

    import django

    django.setup()
    import numpy as np
    import pydicom
    import pydicom.pixels
    from django.core.files.base import ContentFile
    from PIL import Image as Picture

    from stride.care.models import Condition, ConditionType, Site
    from stride.clinics.models import Clinic
    from stride.core import imaging as core_imaging
    from stride.core import phantoms
    from stride.imaging import services
    from stride.imaging.storage import image_storage
    from stride.patients.models import Patient

    out: dict[str, Any] = {"problems": []}
    clinic = Clinic.objects.create(name="Bench clinic", slug="bench", time_zone="UTC")
    today = clinic.today()
    patient = Patient.objects.create(
        clinic=clinic,
        record_number="BENCH-000001",
        given_name="Ana",
        family_name="Silva",
        date_of_birth=dt.date(1970, 5, 17),
        sex="female",
    )
    condition = Condition(
        patient=patient,
        condition_type=ConditionType.objects.get(code="morton-neuroma"),
        laterality="left",
        site=Site.objects.get(code="im-space-3"),
        onset_date=today - dt.timedelta(days=400),
    )
    condition.full_clean()
    condition.save()

    started = time.perf_counter()
    clip = phantoms.ultrasound(
        patient_name="Silva^Ana",
        patient_id="BENCH-000001",
        birth_date=dt.date(1970, 5, 17),
        sex="female",
        laterality="left",
        study_date=today - dt.timedelta(days=1),
        seed=1,
        muscle_mm=2.4,
        neuroma_mm=6.0,
        width=width,
        height=height,
        depth_mm=height / 20,  # 0.05 mm pixels
        frames=frames,
    )
    out["build_seconds"] = time.perf_counter() - started
    data = clip.data
    out["bytes"] = len(data)
    digest = hashlib.sha256(data).hexdigest()
    details = services.Upload(condition=condition, site=condition.site, view="short-axis")
    storage = image_storage()
    best: dict[str, float] = {}

    def timed(key: str, work: Any) -> Any:
        began = time.perf_counter()
        result = work()
        best[key] = min(best.get(key, math.inf), time.perf_counter() - began)
        return result

    others = [f for f in range(0, frames, max(1, frames // 10)) if f != frame_k][:10]

    def one_frame(image: Any) -> Any:
        """(B): read the stored original and decode one frame."""
        with storage.open(image.original.name, "rb") as handle:
            ds = pydicom.dcmread(handle)
        return pydicom.pixels.pixel_array(ds, index=frame_k)

    def one_round(previous: Any) -> tuple[Any, bytes, Any]:
        if previous is not None:
            services.delete_image(previous)  # untimed: the next upload must not be a duplicate
        image = timed("upload", lambda: services.store(patient, data, "clip.dcm", details, user=None))
        thumb = timed("thumbnail", lambda: services.rendition(image, size="thumb"))
        services.forget_renditions(image)
        timed("web_cold", lambda: services.rendition(image, frame=frame_k, size="web"))
        timed("web_cached", lambda: services.rendition(image, frame=frame_k, size="web"))
        services.forget_renditions(image)
        timed("ten_frames", lambda: [services.rendition(image, frame=f, size="web") for f in others])
        timed("inspect", lambda: core_imaging.inspect(data))
        # (A): the same bytes written untouched, then removed (untimed).
        name = timed("write", lambda: storage.save("bench/raw.dcm", ContentFile(data)))
        storage.delete(name)
        return image, thumb, timed("frame", lambda: one_frame(image))

    image = None
    for _ in range(repeat):
        image, thumb, pixels_k = one_round(image)
    best["ten"] = 10 * best["frame"]

    # The checks.
    problems = out["problems"]
    if hashlib.sha256(services.original_bytes(image)).hexdigest() != digest:
        problems.append("the stored original differs from the uploaded bytes")
    if (image.frames, image.width, image.height) != (frames, width, height):
        problems.append(f"image {image.frames} frames {image.width}×{image.height}, not the clip's")
    if not image.spacing_row_mm or abs(image.spacing_row_mm - clip.spacing[0]) > 1e-9:
        problems.append(f"row spacing {image.spacing_row_mm} mm, the clip's is {clip.spacing[0]} mm")
    with Picture.open(io.BytesIO(thumb)) as shown:
        if shown.format != "PNG" or max(shown.size) != 240:
            problems.append(f"the thumbnail is a {shown.format} of {shown.size}")
    full = services.rendition(image, frame=frame_k, size="full")
    with Picture.open(io.BytesIO(full)) as shown:
        rendered = np.asarray(shown.convert("L"), dtype=float)
    with storage.open(image.original.name, "rb") as handle:
        ds = pydicom.dcmread(handle)

    def likeness(index: int) -> float:
        frame = pydicom.pixels.pixel_array(ds, index=index).astype(float)
        return float(np.corrcoef(rendered.ravel(), frame.ravel())[0, 1])

    same = likeness(frame_k)
    neighbours = [likeness(i) for i in (frame_k - 3, frame_k + 3) if 0 <= i < frames]
    if not np.array_equal(pixels_k, pydicom.pixels.pixel_array(ds, index=frame_k)):
        problems.append("the baseline decoded another frame")
    if same < 0.99 or any(n >= same for n in neighbours):
        problems.append(f"the rendition of frame {frame_k} is not that frame (r = {same:.3f})")
    out["likeness"] = same
    out["seconds"] = best
    out["frames"] = frames
    out["others"] = others
    return out


# --------------------------------------------------------------------------- the driver


def _run(args: list[str], env: dict[str, str], what: str) -> str:
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{what} failed:\n{(result.stderr or result.stdout).strip()[-3000:]}")
    return result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=105, help="frames in the clip (default 105)")
    parser.add_argument("--width", type=int, default=800, help="columns (default 800)")
    parser.add_argument("--height", type=int, default=600, help="rows (default 600)")
    parser.add_argument("--frame", type=int, default=None, help="frame k (default the middle one)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per part, the best kept (default 5)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    frame_k = args.frames // 2 if args.frame is None else args.frame
    if args.frames < 11 or args.repeat < 1 or not 0 <= frame_k < args.frames:
        parser.error("--frames must be at least 11, --repeat at least 1, and --frame one of the frames")
    if args.measure:
        print(json.dumps(measure(args.frames, args.width, args.height, args.repeat, frame_k)))
        return 0

    with tempfile.TemporaryDirectory(prefix="stride-bench-imaging-") as home:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "STRIDE_DEBUG"}}
        env |= {
            "STRIDE_HOME": home,
            "DJANGO_SETTINGS_MODULE": "stride.settings",
            "STRIDE_LOG_LEVEL": "WARNING",
            "STRIDE_IMAGE_STORAGE": "local",
        }
        started = time.perf_counter()
        _run([sys.executable, "-m", "stride", "migrate", "--no-input", "-v", "0"], env, "stride migrate")
        setup = time.perf_counter() - started
        command = [sys.executable, __file__, "--measure", "--repeat", str(args.repeat)]
        command += ["--frames", str(args.frames), "--width", str(args.width), "--height", str(args.height)]
        command += ["--frame", str(frame_k)]
        out = json.loads(_run(command, env, "measuring").strip().splitlines()[-1])

    seconds = out["seconds"]
    print(
        f"stride imaging benchmark: an ultrasound clip of {args.width} × {args.height} × {out['frames']} "
        f"frames, 8 bits, uncompressed ({out['bytes'] / 1e6:.1f} MB); frame k = {frame_k}; "
        f"best of {args.repeat}"
    )
    print(
        f"  Python {platform.python_version()}, {os.cpu_count()} CPU(s); local file storage; "
        f"registry set-up {setup:.1f} s and the clip built in {out['build_seconds']:.1f} s (not counted)"
    )
    print(f"\n  {'part':<34} {'ms':>8}  {'baseline':<38} {'ms':>8} {'ratio':>7}  goal")
    ok = not out["problems"]
    for key, (goal, base, label) in PARTS.items():
        value, reference = seconds[key], seconds[base]
        if goal is None:
            verdict = ""
        elif value <= goal:
            verdict = f"< {goal * 1000:g} ms: met ({value / goal:.0%} of it)"
        else:
            verdict = f"< {goal * 1000:g} ms: MISSED ({value / goal:.1f} times the goal)"
            ok = False
        ratio = value / reference
        print(
            f"  {label:<34} {value * 1000:8.1f}  {BASELINES[base]:<38} {reference * 1000:8.1f} "
            f"{ratio:6.{2 if ratio < 1 else 1}f}x  {verdict}"
        )
    print(f"\n  the ten frames: {', '.join(str(f) for f in out['others'])}")
    if out["problems"]:
        print("  CHECK FAILED:")
        for problem in out["problems"]:
            print(f"      {problem}")
    else:
        print(
            "  check OK: the original is stored byte for byte, the image has the clip's frames, size and "
            f"spacing, the thumbnail is a 240 px PNG, the rendition of frame {frame_k} is that frame "
            f"(r = {out['likeness']:.4f})"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
