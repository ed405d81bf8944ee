"""Writing the report's blocks: GitHub-flavoured Markdown (CI job summaries) and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import quote

from llmarch.core.text import has_control, printable
from llmarch.report.blocks import FIGURES, Block, Bullets, Cell, Details, Figure, Heading, Link, Paragraph, Table
from llmarch.report.tables import md_escape, md_line

# -- Markdown ---------------------------------------------------------------------------------------------
# Text is escaped by llmarch.report.tables.md_escape (inline) and md_line (a line's start): no raw HTML, no
# links or images, no line breaks, no control characters, whatever a preset's name or source holds.


def safe_url(url: str) -> str | None:
    """`url` fit for a link target, or None: http(s) only (no javascript:, data:, file:), no blanks or control
    characters, and every character that could close a Markdown link or an HTML attribute percent-encoded."""
    if not url.lower().startswith(("https://", "http://")) or any(ch.isspace() for ch in url) or has_control(url):
        return None
    return quote(url, safe=":/?#@!$&'*+,;=%~-._")  # not ( ) < > [ ] " ` \ or spaces


def _cell(cell: Cell, escape: Callable[[str], str], link: Callable[[str, str], str]) -> str:
    """A table cell as `escape(text)`; a Link with a safe URL as `link(url, escape(text))` (Markdown and HTML)."""
    if isinstance(cell, Link):
        url = safe_url(cell.url)
        return link(url, escape(cell.text)) if url else escape(cell.text)
    return escape(cell)


def _md_cell(cell: Cell) -> str:
    return _cell(cell, md_escape, lambda url, text: f"[{text}]({url})")


def _md_table(t: Table) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in t.headers) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in t.numeric) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def _md_blocks(blocks: Sequence[Block], images: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + md_line(block.text))
        elif isinstance(block, Paragraph):
            out.append(md_line(block.text))
        elif isinstance(block, Bullets):
            out.append("\n".join("- " + md_line(item) for item in block.items))
        elif isinstance(block, Table):
            out.append(_md_table(block))
        elif isinstance(block, Figure):
            if block.name in images:
                out.append(f"![{md_escape(FIGURES[block.name])}]({quote(images[block.name])})")
                out.append("*" + md_escape(block.caption).strip() + "*")
        elif isinstance(block, Details):
            # GitHub renders Markdown inside <details> when blank lines separate it from the tags.
            inner = _md_blocks(block.blocks, images)
            out.append(f"<details>\n<summary>{_html_text(block.summary)}</summary>\n\n" + "\n\n".join(inner)
                       + "\n\n</details>")  # fmt: skip
    return out


def render_markdown(blocks: Sequence[Block], *, images: Mapping[str, str] | None = None) -> str:
    """GitHub-flavoured Markdown for a CI job summary. `images` maps a figure name to the image's path relative
    to the Markdown file (figures without one are left out: job summaries do not render data URIs)."""
    return "\n\n".join(_md_blocks(blocks, images or {})) + "\n"


# -- HTML -------------------------------------------------------------------------------------------------

_CSS = """\
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;line-height:1.45;
max-width:80rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.88rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
details{margin:.5rem 0 1rem}summary{cursor:pointer;font-weight:600}
figure{margin:1rem 0}img{max-width:100%;height:auto}
figcaption{font-size:.85rem;color:#59636e}
"""


def _slug(text: str, used: set[str]) -> str:
    base = "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
    base = "-".join(part for part in base.split("-") if part) or "section"
    slug, n = base, 1
    while slug in used:
        n += 1
        slug = f"{base}-{n}"
    used.add(slug)
    return slug


def _html_text(text: str) -> str:
    """Text as HTML: markup escaped, control characters made visible (a terminal may still show the file)."""
    return html.escape(printable(text), quote=True)


def _html_cell(cell: Cell) -> str:
    return _cell(cell, _html_text, lambda url, text: f'<a href="{url}">{text}</a>')


def _html_table(t: Table) -> str:
    def cls(numeric: bool) -> str:
        return ' class="num"' if numeric else ""

    head = "".join(f"<th{cls(n)}>{_html_text(h)}</th>" for h, n in zip(t.headers, t.numeric, strict=True))
    body = "\n".join(
        "<tr>" + "".join(f"<td{cls(n)}>{_html_cell(c)}</td>" for c, n in zip(row, t.numeric, strict=True)) + "</tr>"
        for row in t.rows
    )
    return f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>'


def _html_blocks(blocks: Sequence[Block], images: Mapping[str, bytes], used: set[str]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f'<h{block.level} id="{_slug(block.text, used)}">{_html_text(block.text)}</h{block.level}>')
        elif isinstance(block, Paragraph):
            out.append(f"<p>{_html_text(block.text)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>\n" + "\n".join(f"<li>{_html_text(i)}</li>" for i in block.items) + "\n</ul>")
        elif isinstance(block, Table):
            out.append(_html_table(block))
        elif isinstance(block, Figure):
            if block.name in images:
                data = base64.b64encode(images[block.name]).decode("ascii")
                out.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{_html_text(FIGURES[block.name])}">'
                    f"<figcaption>{_html_text(block.caption)}</figcaption></figure>"
                )
        elif isinstance(block, Details):
            inner = "\n".join(_html_blocks(block.blocks, images, used))
            out.append(f"<details>\n<summary>{_html_text(block.summary)}</summary>\n{inner}\n</details>")
    return out


def render_html(blocks: Sequence[Block], *, images: Mapping[str, bytes] | None = None) -> str:
    """One self-contained HTML page: inline CSS, images as base64 data URIs, no scripts, no external resources
    (the only links are the presets' documented sources)."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "llmarch report")
    body = "\n".join(_html_blocks(blocks, images or {}, set()))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_html_text(title)}</title>\n<style>\n{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body}\n</main>\n</body>\n</html>\n"
    )
