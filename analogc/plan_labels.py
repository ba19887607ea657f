"""Names for the blocks of a plan picture, whatever their size: three lines inside a
block that has room, two smaller lines (turned along a tall, narrow block) inside one
that has less, and for slivers a leader line to a label beside the panel."""

from __future__ import annotations

from dataclasses import dataclass

FULL_SIZE = 7.0  # pt, the three-line label
SMALLEST = 4.5  # pt, the smallest inside label worth printing
LEADER_SIZE = 6.0  # pt
MAX_LEADERS = 16  # beyond this many slivers in one panel the colours must do (the legend)
CHAR_WIDTH = 0.6  # of the font size: a generous average for DejaVu Sans
LINE_HEIGHT = 1.3  # of the font size


@dataclass
class Block:
    """A block's rectangle in data units (tiles) and its name."""

    x: float
    y: float
    width: float
    height: float
    layer: str
    rows: tuple[int, int]
    cols: tuple[int, int]

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2


def text_inches(lines: list[str], size: float) -> tuple[float, float]:
    """(width, height) in inches of `lines` of text at `size` points, roughly."""
    return max(len(line) for line in lines) * CHAR_WIDTH * size / 72, len(lines) * LINE_HEIGHT * size / 72


def inside_label(block: Block, inches_per_tile: float):
    """(lines, size, rotation) of the largest label that fits inside the block, or None:
    three lines, then two, then one, each level or turned along a tall block."""
    width, height = block.width * inches_per_tile, block.height * inches_per_tile
    (k0, k1), (n0, n1) = block.rows, block.cols
    shapes = (
        [block.layer, f"rows {k0}:{k1}", f"cols {n0}:{n1}"],
        [block.layer, f"{k0}:{k1} × {n0}:{n1}"],
        [f"{block.layer} {k0}:{k1} × {n0}:{n1}"],
    )
    size = FULL_SIZE
    while size >= SMALLEST:
        for lines in shapes:
            if len(lines) == 1 and size < LEADER_SIZE:  # a leader's label reads better than a smaller line
                continue
            w, h = text_inches(lines, size)
            if w <= width and h <= height:
                return lines, size, 0
            if h <= width and w <= height:
                return lines, size, 90
        size -= 0.5
    return None


def name_blocks(ax, blocks: list[Block], inches_per_tile: float, right_edge: float) -> float:
    """Label every block in `ax`; return the x (data units) the panel must reach to show
    the leader labels placed right of `right_edge` (or `right_edge` when there are none)."""
    slivers = []
    for block in blocks:
        label = inside_label(block, inches_per_tile)
        if label is None:
            slivers.append(block)
            continue
        lines, size, rotation = label
        ax.text(*block.centre, "\n".join(lines), ha="center", va="center", fontsize=size, rotation=rotation,
                clip_on=True, gid=f"block-label {block.layer} {block.rows} {block.cols}")
    if not slivers or len(slivers) > MAX_LEADERS:
        return right_edge
    step = LINE_HEIGHT * LEADER_SIZE / 72 / inches_per_tile  # one line, in tiles
    x, last, widest = right_edge + 0.15, -float("inf"), 0.0
    for block in sorted(slivers, key=lambda b: b.centre[1]):
        text = f"{block.layer} rows {block.rows[0]}:{block.rows[1]} cols {block.cols[0]}:{block.cols[1]}"
        y = max(block.centre[1], last + step)
        last = y
        ax.annotate(text, xy=block.centre, xytext=(x, y), fontsize=LEADER_SIZE, ha="left", va="center",
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#555555", "shrinkA": 0, "shrinkB": 0},
                    annotation_clip=False, gid=f"block-leader {block.layer} {block.rows} {block.cols}")
        widest = max(widest, text_inches([text], LEADER_SIZE)[0] / inches_per_tile)
    return x + widest + 0.05
