"""Drawing SynthCRAG icons and scenes with PIL. Every scene comes with the exact mask of its target."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from pixsearch_core.synthcrag.world import COLOURS, Entity


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    def ring(n: int, rad: float, phase: float) -> list[tuple[float, float]]:
        return [
            (cx + rad * math.cos(phase + 2 * math.pi * k / n), cy + rad * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)
        ]

    if shape == "square":
        return ring(4, r * 1.2, math.pi / 4)
    if shape == "triangle":
        return ring(3, r * 1.15, -math.pi / 2)
    if shape == "diamond":
        return ring(4, r, 0.0)
    if shape == "hexagon":
        return ring(6, r, 0.0)
    if shape == "star":
        outer, inner = ring(5, r * 1.15, -math.pi / 2), ring(5, r * 0.5, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner) for p in pair]
    if shape == "cross":
        a, b = r * 0.35, r
        pts = [
            (-a, -b),
            (a, -b),
            (a, -a),
            (b, -a),
            (b, a),
            (a, a),
            (a, b),
            (-a, b),
            (-a, a),
            (-b, a),
            (-b, -a),
            (-a, -a),
        ]
        return [(cx + x, cy + y) for x, y in pts]
    return None  # circle, ring


def shape_mask(shape: str, size: int) -> Image.Image:
    """An L-mode mask (255 inside) of `shape` filling a size x size box."""
    m = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(m)
    c, r = size / 2, size * 0.42
    poly = _polygon(shape, c, c, r)
    if poly is not None:
        d.polygon(poly, fill=255)
    else:
        d.ellipse([c - r, c - r, c + r, c + r], fill=255)
        if shape == "ring":
            ri = r * 0.55
            d.ellipse([c - ri, c - ri, c + ri, c + ri], fill=0)
    return m


def _pattern(pattern: str, accent: tuple[int, int, int], base: tuple[int, int, int], size: int) -> Image.Image:
    img = Image.new("RGB", (size, size), base)
    d = ImageDraw.Draw(img)
    step = max(4, size // 6)
    if pattern == "striped":
        for x in range(-size, size, step):
            d.polygon([(x, 0), (x + step // 2, 0), (x + step // 2 + size, size), (x + size, size)], fill=accent)
    elif pattern == "dotted":
        rad = max(1, step // 4)
        for y in range(step // 2, size, step):
            for x in range(step // 2, size, step):
                d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=accent)
    elif pattern == "checkered":
        for y in range(0, size, step):
            for x in range(0, size, step):
                if (x // step + y // step) % 2:
                    d.rectangle([x, y, x + step - 1, y + step - 1], fill=accent)
    return img


def render_icon(entity: Entity, size: int) -> tuple[Image.Image, Image.Image]:
    """(RGB icon on transparent-as-black, L mask) of an entity at `size` pixels."""
    mask = shape_mask(entity.shape, size)
    fill = _pattern(entity.pattern, COLOURS[entity.accent], COLOURS[entity.colour], size)
    return fill, mask


def icon_image(entity: Entity, size: int = 128, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """The entity alone on a plain background: the picture in its encyclopedia document (the image index)."""
    canvas = Image.new("RGB", (size, size), background)
    fill, mask = render_icon(entity, size)
    canvas.paste(fill, (0, 0), mask)
    return canvas


@dataclass
class Scene:
    image: Image.Image
    target_mask: np.ndarray  # (H, W) bool
    target_box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    objects: list[str]  # entity ids in the scene, target first
    egocentric: bool


def _clutter(rng: np.random.Generator, size: int) -> Image.Image:
    base = tuple(int(v) for v in rng.integers(150, 230, size=3))
    img = Image.new("RGB", (size, size), base)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(10, 20))):  # background clutter: soft lines and blobs
        col = tuple(int(v) for v in rng.integers(110, 240, size=3))
        x0, y0 = (int(v) for v in rng.integers(0, size, size=2))
        if rng.random() < 0.5:
            d.line([x0, y0, *(int(v) for v in rng.integers(0, size, size=2))], fill=col, width=int(rng.integers(2, 6)))
        else:
            r = int(rng.integers(6, size // 6))
            d.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=col)
    return img


def _place(
    rng: np.random.Generator, size: int, s: int, boxes: list[tuple[int, int, int, int]]
) -> tuple[int, int] | None:
    for _ in range(200):
        x, y = (int(v) for v in rng.integers(0, size - s, size=2))
        if all(x + s <= bx0 or bx1 <= x or y + s <= by0 or by1 <= y for bx0, by0, bx1, by1 in boxes):
            return x, y
    return None


def compose_scene(
    rng: np.random.Generator, target: Entity, distractors: list[Entity], egocentric: bool, size: int = 256
) -> Scene:
    """Egocentric: a small target among larger distractors on clutter. Otherwise: the target large and alone."""
    if not egocentric:
        img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(200, 250, size=3)))
        s = int(size * rng.uniform(0.6, 0.8))
        placed = [(target, s, (int(rng.integers(0, size - s)), int(rng.integers(0, size - s))))]
    else:
        img = _clutter(rng, size)
        placed, boxes = [], []
        sizes = [int(size * rng.uniform(0.2, 0.26))] + [int(size * rng.uniform(0.26, 0.34)) for _ in distractors]
        for ent, s in zip([target, *distractors], sizes):
            xy = _place(rng, size, s, boxes)
            if xy is None:
                continue  # no room: fewer distractors (never drops the target: it is placed first)
            placed.append((ent, s, xy))
            boxes.append((xy[0], xy[1], xy[0] + s, xy[1] + s))
    target_mask = np.zeros((size, size), dtype=bool)
    for ent, s, (x, y) in placed:
        fill, mask = render_icon(ent, s)
        img.paste(fill, (x, y), mask)
        if ent is target:
            target_mask[y : y + s, x : x + s] = np.asarray(mask) > 127
    ys, xs = np.nonzero(target_mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Scene(img, target_mask, box, [e.id for e, _, _ in placed], egocentric)
