"""Writes a small synthetic COCO instance-segmentation dataset (no download).

Each image holds a few filled squares, circles and triangles on a noisy
background; every shape gets a box and a polygon mask.

Usage: python tools/make_shapes_coco.py OUT_DIR [--images N] [--size PX]
"""
import argparse
import json
import math
import os
import random
from typing import List, Tuple

from PIL import Image, ImageDraw

CLASSES = ('square', 'circle', 'triangle')


def _polygon(kind: str, cx: float, cy: float, r: float,
             angle: float) -> List[Tuple[float, float]]:
    corners = {'square': 4, 'triangle': 3, 'circle': 24}[kind]
    return [(cx + r * math.cos(angle + 2 * math.pi * k / corners),
             cy + r * math.sin(angle + 2 * math.pi * k / corners))
            for k in range(corners)]


def make_dataset(root: str, num_images: int = 16, size: int = 256,
                 seed: int = 0, ann_name: str = 'train.json') -> str:
    """Generate images and a COCO annotation file under ``root``.

    Args:
        root: Output folder; gets ``images/`` and ``annotations/``.
        num_images: Number of images.
        size: Image width and height in pixels.
        seed: Random seed, so the same call writes the same data.
        ann_name: File name of the annotation JSON.

    Returns:
        str: Path of the annotation file.
    """
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, 'images'), exist_ok=True)
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        img = Image.new('RGB', (size, size), tuple(
            rng.randint(0, 60) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randint(2, 4)):
            label = rng.randrange(len(CLASSES))
            r = rng.uniform(size * 0.08, size * 0.2)
            cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
            poly = _polygon(CLASSES[label], cx, cy, r,
                            rng.uniform(0, math.pi))
            draw.polygon(poly, fill=tuple(rng.randint(120, 255)
                                          for _ in range(3)))
            xs, ys = [p[0] for p in poly], [p[1] for p in poly]
            x0, y0 = max(min(xs), 0.), max(min(ys), 0.)
            w, h = min(max(xs), size) - x0, min(max(ys), size) - y0
            annotations.append(
                dict(id=len(annotations) + 1, image_id=image_id,
                     category_id=label + 1, iscrowd=0, area=w * h,
                     bbox=[x0, y0, w, h],
                     segmentation=[[c for p in poly for c in p]]))
        file_name = f'{image_id:05d}.jpg'
        img.save(os.path.join(root, 'images', file_name), quality=95)
        images.append(dict(id=image_id, file_name=file_name, width=size,
                           height=size))
    ann_file = os.path.join(root, 'annotations', ann_name)
    with open(ann_file, 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=[dict(id=i + 1, name=n)
                                   for i, n in enumerate(CLASSES)]), f)
    return ann_file


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--images', type=int, default=32)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    print(make_dataset(args.out_dir, args.images, args.size, args.seed))
