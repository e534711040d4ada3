"""The nearest of Google's eleven event colours to an RGB colour.

Google events take a `colorId` from the event palette of `colors.get` (reference
google-calendar NOTES §13), not RGB. Nearness is measured in CIELAB (ΔE 1976), where equal
distances look about equally different, rather than in raw RGB, where greens crowd together.
"""

from __future__ import annotations

from functools import lru_cache

# colors.get → "event", in id order "1" … "11" (the emulator serves the same palette).
_EVENT_HEX = (
    "#a4bdfc #7ae7bf #dbadff #ff887c #fbd75b #ffb878 #46d6db #e1e1e1 #5484ed #51b749 #dc2127"
)
EVENT_PALETTE: dict[str, str] = {
    str(n): colour for n, colour in enumerate(_EVENT_HEX.split(), start=1)
}

_WHITE = (0.95047, 1.0, 1.08883)  # D65


def nearest_event_colour(colour: str) -> str | None:
    """The palette id nearest to `colour` ("#rrggbb"), or None for no colour."""
    if len(colour) != 7 or not colour.startswith("#"):
        return None
    target = _lab(colour.lower())

    def distance(key: str) -> float:
        return sum((a - b) ** 2 for a, b in zip(_lab(EVENT_PALETTE[key]), target, strict=True))

    return min(EVENT_PALETTE, key=distance)


@lru_cache(maxsize=1024)  # the palette and the colours a portal uses; any string can arrive
def _lab(colour: str) -> tuple[float, float, float]:
    red, green, blue = (_linear(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
    x = (0.4124 * red + 0.3576 * green + 0.1805 * blue) / _WHITE[0]
    y = (0.2126 * red + 0.7152 * green + 0.0722 * blue) / _WHITE[1]
    z = (0.0193 * red + 0.1192 * green + 0.9505 * blue) / _WHITE[2]
    fx, fy, fz = _f(x), _f(y), _f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def _f(t: float) -> float:
    return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
