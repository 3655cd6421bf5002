"""Writes the image-preparation fixtures of `loom encode` (Tests/Fixtures/images/).

Pillow is the reference: ADM's center_crop_arr (guided-diffusion's image_datasets.py, which DiT,
SiT and LightningDiT use to prepare ImageNet) is reproduced here in a few lines, and its outputs
saved as PNG next to the inputs. Run with a Python that has Pillow and numpy (e.g. the benchmark
venv): python3 scripts/make-image-fixtures.py
"""
import os

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "images")


def center_crop_arr(pil_image, image_size):
    """ADM's preparation: box-halve while the short side is >= 2*size, bicubic to size, centre crop."""
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
    scale = image_size / min(*pil_image.size)
    pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)
    arr = np.array(pil_image)
    crop_y = (arr.shape[0] - image_size) // 2
    crop_x = (arr.shape[1] - image_size) // 2
    return arr[crop_y:crop_y + image_size, crop_x:crop_x + image_size]


def smooth_image(rng, width, height):
    """A photo-like test image: smooth gradients plus noise, so that resampling has structure to keep."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(x / 7.0) * 90, np.cos(y / 5.0) * 90, np.sin((x + y) / 11.0) * 90], axis=-1) + 128
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def main():
    rng = np.random.default_rng(7)
    for sub in ("folder/cat", "folder/dog"):
        os.makedirs(os.path.join(OUT, sub), exist_ok=True)
    cases = {
        "folder/cat/a.png": (smooth_image(rng, 83, 61), "RGB"),       # halved once, then bicubic to 16
        "folder/cat/b.png": (smooth_image(rng, 20, 31)[:, :, 0], "L"),  # grey, enlarged by bicubic
        "folder/dog/c.jpg": (smooth_image(rng, 47, 40), "RGB"),       # JPEG, reduced by bicubic
    }
    for name, (array, mode) in cases.items():
        path = os.path.join(OUT, name)
        image = Image.fromarray(array, mode)
        if name.endswith(".jpg"):
            image.save(path, quality=90)
        else:
            image.save(path)
        # The reference: Pillow's decode of the saved file, as RGB, through ADM's crop at 16.
        prepared = center_crop_arr(Image.open(path).convert("RGB"), 16)
        Image.fromarray(prepared, "RGB").save(os.path.join(OUT, os.path.basename(name) + ".crop16.png"))
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
