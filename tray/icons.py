"""The tray icons, drawn at runtime with Pillow (no image files to ship): one per `IconState`.

Each state has its own colour AND its own shape, so it reads on any panel and for colour-blind users:
in sync = green disc with a tick; syncing = blue disc with an up arrow and a white progress arc;
paused = amber disc with two bars; offline = grey disc with a slash; error = red disc with "!";
not set up = hollow grey ring with a dot.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from lockr_local.tray.model import IconState

SIZE = 64
COLOURS: dict[IconState, tuple[int, int, int]] = {
    IconState.IN_SYNC: (46, 160, 67),
    IconState.SYNCING: (33, 111, 219),
    IconState.PAUSED: (230, 160, 0),
    IconState.OFFLINE: (120, 120, 120),
    IconState.ERROR: (208, 40, 40),
    IconState.NOT_SET_UP: (150, 150, 150),
}
WHITE = (255, 255, 255, 255)


def draw_icon(state: IconState, progress: float | None = None, size: int = SIZE) -> Image.Image:
    """An RGBA image of `size` pixels square; `progress` (0..1) adds an arc on the syncing icon."""
    scale = size / SIZE
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    colour = COLOURS[state] + (255,)
    box = (2 * scale, 2 * scale, size - 2 * scale, size - 2 * scale)

    def s(*points: float) -> list[float]:
        return [p * scale for p in points]

    if state is IconState.NOT_SET_UP:
        draw.ellipse(box, outline=colour, width=max(1, round(7 * scale)))
        draw.ellipse(s(24, 24, 40, 40), fill=colour)
        return image
    draw.ellipse(box, fill=colour)
    width = max(1, round(7 * scale))
    if state is IconState.IN_SYNC:
        draw.line(s(17, 33, 28, 44, 47, 21), fill=WHITE, width=width, joint="curve")
    elif state is IconState.SYNCING:
        draw.polygon(s(32, 13, 47, 31, 37, 31, 37, 50, 27, 50, 27, 31, 17, 31), fill=WHITE)
        if progress is not None:
            inset = 5 * scale
            arc_box = (box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset)
            draw.arc(arc_box, -90, -90 + 360 * max(0.0, min(1.0, progress)), fill=(255, 255, 255, 200),
                     width=max(1, round(4 * scale)))
    elif state is IconState.PAUSED:
        draw.rectangle(s(21, 18, 29, 46), fill=WHITE)
        draw.rectangle(s(35, 18, 43, 46), fill=WHITE)
    elif state is IconState.OFFLINE:
        draw.line(s(19, 45, 45, 19), fill=WHITE, width=width)
        draw.ellipse(s(14, 14, 50, 50), outline=WHITE, width=max(1, round(4 * scale)))
    elif state is IconState.ERROR:
        draw.rectangle(s(28, 13, 36, 38), fill=WHITE)
        draw.rectangle(s(28, 44, 36, 52), fill=WHITE)
    return image
