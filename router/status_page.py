"""The router's read-only status page (``/`` on its metrics port): the cluster drawn as people
would rather look at it than read. Server-rendered HTML with inline SVG, no script and no
build step: each replica set with its members (role by colour, lag under each), chunks per
shard as a bar chart per sharded collection, running migrations and recent elections. The
data is :func:`helogale.status.collect` asked through this very router; the page refreshes
itself every few seconds with a meta tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from helogale.status_render import lag_text, size_text

REFRESH_S = 5
COLOURS = {"PRIMARY": "#2e7d32", "SECONDARY": "#1565c0", "DOWN": "#c62828"}
OTHER = "#9e9e9e"

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.4em}
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left}
.down{color:#c62828;font-weight:bold}
"""


def status_page(router: str, timeout: float = 1.5) -> tuple[str, bytes]:
    """(content type, body) of the page for the cluster behind ``router``."""
    from helogale.status import collect

    try:
        status = collect(f"helogale://{router}/", timeout)
    except Exception as exc:
        body = page(f"<p class='down'>status unavailable: {escape(str(exc))}</p>")
        return "text/html; charset=utf-8", body.encode()
    return "text/html; charset=utf-8", render_page(status).encode()


def page(content: str) -> str:
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<meta http-equiv='refresh' content='{REFRESH_S}'>"
            f"<title>Helogale cluster</title><style>{STYLE}</style></head>"
            f"<body><h1>Helogale cluster</h1>{content}</body></html>")


def set_svg(s: Mapping[str, Any]) -> str:
    """One replica set: a box with a circle per member, its role and lag beneath."""
    members = s["members"]
    width = max(220, 170 * len(members) + 20)
    parts = [f"<svg class='set' data-set='{escape(s['name'])}' width='{width}' height='140' "
             f"xmlns='http://www.w3.org/2000/svg' role='img' aria-label='{escape(s['name'])}'>",
             f"<rect x='1' y='1' width='{width - 2}' height='138' rx='10' fill='#fafafa' "
             "stroke='#bbb'/>",
             f"<text x='12' y='22' font-weight='bold'>{escape(s['role'])} {escape(s['name'])}"
             f" (term {escape(str(s.get('term', '-')))})</text>"]
    for i, m in enumerate(members):
        cx = 95 + 170 * i
        colour = COLOURS.get(m["state"], OTHER)
        parts.append(f"<g class='member' data-state='{escape(m['state'])}'>"
                     f"<circle cx='{cx}' cy='62' r='18' fill='{colour}'/>"
                     f"<text x='{cx}' y='100' text-anchor='middle' font-size='12'>"
                     f"{escape(m['host'])}</text>"
                     f"<text x='{cx}' y='116' text-anchor='middle' font-size='12' "
                     f"fill='{colour}'>{escape(m['state'])}</text>"
                     f"<text x='{cx}' y='131' text-anchor='middle' font-size='11'>lag "
                     f"{escape(lag_text(m))}</text></g>")
    parts.append("</svg>")
    return "".join(parts)


def chunks_svg(c: Mapping[str, Any]) -> str:
    """Chunks per shard of one collection as horizontal bars."""
    shards = sorted(set(c["chunks"]) | set(c["dataSize"]))
    most = max([1, *c["chunks"].values()])
    height = 30 + 26 * len(shards)
    parts = [f"<svg class='chunks' data-ns='{escape(c['ns'])}' width='520' height='{height}' "
             "xmlns='http://www.w3.org/2000/svg' role='img'>",
             f"<text x='4' y='18' font-weight='bold'>{escape(c['ns'])}: chunks per shard</text>"]
    for i, shard in enumerate(shards):
        n = int(c["chunks"].get(shard, 0))
        y = 28 + 26 * i
        w = int(300 * n / most)
        parts.append(f"<g class='bar' data-shard='{escape(shard)}' data-chunks='{n}'>"
                     f"<text x='4' y='{y + 15}' font-size='12'>{escape(shard)}</text>"
                     f"<rect x='80' y='{y}' width='{max(w, 1)}' height='20' fill='#6a1b9a'/>"
                     f"<text x='{86 + w}' y='{y + 15}' font-size='12'>{n} chunks, "
                     f"{escape(size_text(c['dataSize'].get(shard)))}</text></g>")
    parts.append("</svg>")
    return "".join(parts)


def render_page(status: Mapping[str, Any]) -> str:
    out = [f"<p>as of {escape(status['time'])}</p>"]
    if status.get("routers"):
        out.append("<h2>Routers</h2><ul id='routers'>")
        for r in status["routers"]:
            cls = "" if r["up"] else " class='down'"
            out.append(f"<li{cls}>{escape(r['host'])}: {'up' if r['up'] else 'DOWN'}</li>")
        out.append("</ul>")
    out.append("<h2>Replica sets</h2><div id='sets'>")
    out += [set_svg(s) + "<br>" for s in status["sets"]]
    out.append("</div>")
    if status.get("collections"):
        out.append("<h2>Chunks</h2><div id='chunks'>")
        out += [chunks_svg(c) + "<br>" for c in status["collections"]]
        out.append("</div>")
    out.append("<h2>Migrations</h2><ul id='migrations'>")
    if not status.get("migrations"):
        out.append("<li>none running</li>")
    for m in status.get("migrations", []):
        out.append(f"<li>{escape(str(m.get('ns')))}: {escape(m['from'])} &rarr; "
                   f"{escape(str(m.get('to')))}, phase <b>{escape(str(m.get('phase')))}</b>, "
                   f"{escape(str(m.get('docsCloned', 0)))} documents cloned</li>")
    out.append("</ul><h2>Recent elections</h2><table id='elections'>"
               "<tr><th>set</th><th>term</th><th>primary</th><th>elected</th></tr>")
    for s in sorted(status["sets"], key=lambda s: s.get("lastElection") or "", reverse=True):
        out.append(f"<tr><td>{escape(s['name'])}</td><td>{escape(str(s.get('term')))}</td>"
                   f"<td>{escape(str(s.get('primary')))}</td>"
                   f"<td>{escape(str(s.get('lastElection', '-')))}</td></tr>")
    out.append("</table>")
    if status.get("balancer"):
        b = status["balancer"]
        out.append(f"<h2>Balancer</h2><p id='balancer'>mode {escape(str(b.get('mode')))}, "
                   f"{escape(str(b.get('rounds')))} rounds, "
                   f"{escape(str(b.get('chunksMoved')))} chunks moved</p>")
    return page("".join(out))
