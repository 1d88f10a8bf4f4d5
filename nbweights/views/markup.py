"""HTML and images for the views, built in one place, every text escaped.

Names and messages come from the model, a loaded file or an error: ipywidgets' HTML widget
renders its value with ``innerHTML``, so a parameter named ``<img src=x onerror=...>`` would run
in the page. Every piece of text that reaches an HTML widget goes through :func:`text` (or a
helper here that uses it); markup is only ever built from this module's templates.
"""
from __future__ import annotations

import html

import ipywidgets as widgets


def text(value: object) -> str:
    """``value`` as HTML text: nothing in it can open a tag or an attribute."""
    return html.escape(str(value), quote=True)


def title(value: object, hover: object | None = None) -> str:
    """A view's title line; the whole of ``hover`` (e.g. a long name) shows on hover."""
    tip = f' title="{text(hover)}"' if hover is not None else ""
    return f'<div class="nbw-title"{tip}>{text(value)}</div>'


def note(value: object, error: bool = False) -> str:
    """A short message in place of a view's content (an error in the error colour)."""
    return f'<span class="{"nbw-error" if error else "nbw-note"}">{text(value)}</span>'


def cell(value: object, css: str = "", hover: object | None = None, header: bool = False) -> str:
    """One table cell."""
    tag = "th" if header else "td"
    attributes = (f' class="{text(css)}"' if css else "") + (f' title="{text(hover)}"' if hover is not None else "")
    return f"<{tag}{attributes}>{text(value)}</{tag}>"


def row(cells: list[str], css: str = "") -> str:
    """A table row of cells made by :func:`cell`."""
    return f'<tr{f" class={chr(34)}{text(css)}{chr(34)}" if css else ""}>{"".join(cells)}</tr>'


def title_html(value: object) -> widgets.HTML:
    """An HTML widget holding a title line."""
    label = widgets.HTML(title(value))
    label.add_class("nbw-title-line")
    return label


def set_html(widget: widgets.HTML, markup: str) -> None:
    """Set an HTML widget's value if it changed (markup built by this module)."""
    if widget.value != markup:
        widget.value = markup


def png_image(css_class: str) -> widgets.Image:
    """An empty PNG image widget; CSS keeps its pixels square when the browser scales it."""
    image = widgets.Image(format="png", layout=widgets.Layout(flex="0 0 auto", object_fit="fill"))
    image.add_class("nbw-pixelated")
    image.add_class(css_class)
    return image


def set_png(image: widgets.Image, png: bytes, screen_height: int, screen_width: int) -> None:
    """Show PNG bytes scaled to ``screen_height`` x ``screen_width`` CSS pixels (square pixels
    when the factors are whole numbers); sends nothing when unchanged."""
    size = (f"{screen_width}px", f"{screen_height}px")
    if (image.layout.width, image.layout.height) != size:
        with image.layout.hold_sync():
            image.layout.width, image.layout.height = size
    if image.value != png:
        image.value = png
