"""Reporting: the tables, figures, diagnostics and the FLOPs/parameter profile.

Also how the paper prints the ten numbers' names, which the tables and the figures share.
"""

# The paper's two header rows (event type, then Seg./Event), flattened into one: 'segment.audio' -> 'Audio Seg.'.
EVENT_TYPES = {"audio": "Audio", "visual": "Visual", "audio_visual": "Audio-visual",
               "type_av": "Type@AV", "event_av": "Event@AV"}
LEVEL_NAMES = {"segment": "Seg.", "event": "Event"}


def column_label(key: str) -> str:
    """'segment.audio' -> 'Audio Seg.'."""
    level, kind = key.split(".")
    return f"{EVENT_TYPES[kind]} {LEVEL_NAMES[level]}"
