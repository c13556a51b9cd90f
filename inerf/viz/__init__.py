"""Pictures of results: overlays (:mod:`.overlay`), GIF/MP4 writers (:mod:`.video`), plots (:mod:`.plots`).

Design note. Everything here takes plain arrays or tensors (float images in [0, 1] or uint8) and knows
nothing about fields or solvers, so pose reports, training previews and a demo page can share it. Plots use
Matplotlib's object API on an Agg canvas and never switch the caller's backend.
"""
