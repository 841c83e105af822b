"""A drawing canvas widget: what is drawn in the browser reaches Python as strokes, lists of ``[x, y]`` points.

Built on anywidget (one ES module and a few synced traits, ``resources/sketchpad.js``), which runs in JupyterLab,
Notebook 7, VS Code and Colab (it turns on Colab's custom widget manager itself). The strokes, not a screenshot,
are synced, so turning a drawing into the network's input is ``drawing.render``: ours, and tested.
"""
from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

RESOURCES = Path(__file__).resolve().parent / "resources"


class SketchPad(anywidget.AnyWidget):
    """A square canvas of ``size`` pixels with a ``label`` above it and a clear button below.

    ``strokes``: the drawing, one list of ``[x, y]`` canvas pixels per stroke, sent when a stroke ends; setting it
    from Python redraws the canvas. Any value is accepted here and checked by ``drawing.check_strokes`` where it
    is used, so a malformed drawing is reported as a message, not raised from the trait.
    """
    _esm = (RESOURCES / "sketchpad.js").read_text()
    _css = (RESOURCES / "sketchpad.css").read_text()
    strokes = traitlets.Any([]).tag(sync=True)
    label = traitlets.Unicode("").tag(sync=True)
    size = traitlets.Int(140).tag(sync=True)
