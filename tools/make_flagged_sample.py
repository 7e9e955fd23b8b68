"""Make the test picture that NudeNet flags: ``tests/data/nudenet-flagged.png``.

No photograph can be downloaded here and the ``nudenet`` package ships no sample image, so this
searches for one: an abstract picture (blurred colour blobs, nothing a person would call nude)
changed at random, a change kept when it raises the detector's score for
``FEMALE_BREAST_EXPOSED``, until the score passes ``--target``. It is an adversarial example for
this model: the point is that the *real* detector, unchanged and at its usual threshold, flags it,
so the tests can show what happens to a flagged picture. Deterministic for a seed (one thread).

    python tools/make_flagged_sample.py [--target 0.85] [--seed 0] [--out tests/data/nudenet-flagged.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
SIZE = 320  # the detector's input size


def start_picture() -> np.ndarray:
    img = Image.new("RGB", (SIZE, SIZE), (40, 90, 160))
    draw = ImageDraw.Draw(img)
    draw.ellipse((78, 62, 156, 140), fill=(225, 170, 140))
    draw.ellipse((162, 62, 240, 140), fill=(225, 170, 140))
    draw.ellipse((109, 94, 122, 106), fill=(150, 80, 70))
    draw.ellipse((194, 94, 206, 106), fill=(150, 80, 70))
    return np.asarray(img.filter(ImageFilter.GaussianBlur(4)), dtype=np.float32) / 255


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", type=float, default=0.85)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=3000)
    p.add_argument("--category", default="FEMALE_BREAST_EXPOSED")
    p.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "nudenet-flagged.png")
    args = p.parse_args(argv)

    import nudenet.nudenet as module
    import onnxruntime

    sys.path.insert(0, str(ROOT))
    from adapters.nudenet.detector import LABELS

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        os.path.join(os.path.dirname(module.__file__), "320n.onnx"),
        options,
        providers=["CPUExecutionProvider"],
    )
    name = session.get_inputs()[0].name
    target = LABELS.index(args.category)

    def scores(batch: np.ndarray) -> np.ndarray:
        # NudeNet feeds its model BGR (its reader swaps the channels twice over): so do we.
        x = np.ascontiguousarray(batch[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32))
        return session.run(None, {name: x})[0][:, 4 + target, :].max(axis=1)

    rng = np.random.default_rng(args.seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    current = start_picture()
    best = float(scores(current[None])[0])
    started = time.time()
    for step in range(1, args.max_steps + 1):
        candidates = []
        for _ in range(8):
            c = current.copy()
            for _ in range(rng.integers(1, 4)):
                cx, cy = rng.uniform(0, SIZE, 2)
                r = rng.uniform(4, 60)
                blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
                c += blob * rng.normal(0, 0.25, 3)
            candidates.append(np.clip(c, 0, 1))
        found = scores(np.stack(candidates))
        i = int(np.argmax(found))
        if found[i] > best:
            best, current = float(found[i]), candidates[i]
            print(f"step {step} ({time.time() - started:.0f}s): score {best:.3f}", flush=True)
        if best >= args.target:
            break
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray((current * 255).round().astype(np.uint8))
    picture.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.category} {best:.3f} at the model's input)")
    # What the library itself says, at the sizes the tests use.
    import io

    detector = module.NudeDetector()
    for size in (320, 512, 1024):
        buffer = io.BytesIO()
        picture.resize((size, size), Image.Resampling.BICUBIC).save(buffer, "PNG")
        top = max((d["score"] for d in detector.detect(buffer.getvalue()) if d["class"] == args.category), default=0.0)
        print(f"  NudeDetector at {size}x{size}: {args.category} {top:.3f}")
    return 0 if best >= args.target else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
