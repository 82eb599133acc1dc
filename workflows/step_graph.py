"""A run's steps as a small server-rendered DAG: an inline SVG, steps laid out in columns by depth
(a step sits one column right of its deepest parent), coloured by status, with an edge per dependency.

No JavaScript and nothing downloaded: the admin shows it as it is, and the dashboard swaps in a fresh
copy when a run's steps change.
"""

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe

STATUS_COLOURS = {
    "waiting": "#adb5bd",
    "running": "#0dcaf0",
    "awaiting_approval": "#ffc107",
    "completed": "#198754",
    "failed": "#dc3545",
    "skipped": "#6c757d",
    "upstream_failed": "#fd7e14",
    "cancelled": "#495057",
}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 44, 50, 18, 10


def depths(specs):
    """{step_id: column}: 0 for a step without parents, else one more than its deepest parent."""
    parents = {s["id"]: list(s.get("depends_on") or []) for s in specs}
    found = {}
    for step_id in parents:
        stack = [step_id]
        while stack:  # iterative: a deep chain never hits the recursion limit
            current = stack[-1]
            waiting = [p for p in parents[current] if p not in found and p in parents]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            found[current] = 1 + max((found[p] for p in parents[current] if p in found), default=-1)
    return found


def layout(specs):
    """{step_id: (x, y)} of each node's top-left corner, and the drawing's (width, height)."""
    columns = {}
    for step_id, depth in depths(specs).items():
        columns.setdefault(depth, []).append(step_id)
    positions = {}
    for depth, members in columns.items():
        for row, step_id in enumerate(members):
            positions[step_id] = (PAD + depth * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    width = PAD * 2 + len(columns) * (NODE_W + GAP_X) - GAP_X if columns else 0
    height = PAD * 2 + max((len(m) for m in columns.values()), default=0) * (NODE_H + GAP_Y) - GAP_Y
    return positions, (max(width, 0), max(height, 0))


def render(specs, statuses, link=None):
    """The SVG of a definition's steps. `statuses`: {step_id: status}; `link(step_id)`: a URL or None."""
    positions, (width, height) = layout(specs)
    edges = []
    for spec in specs:
        for parent in spec.get("depends_on") or []:
            if parent in positions:
                (px, py), (cx, cy) = positions[parent], positions[spec["id"]]
                edges.append((px + NODE_W, py + NODE_H // 2, cx, cy + NODE_H // 2))
    nodes = []
    for spec in specs:
        step_id = spec["id"]
        x, y = positions[step_id]
        status = statuses.get(step_id, "waiting")
        kind = spec.get("type", "task")
        box = format_html(
            '<g class="wf-step" data-step="{}" data-status="{}">'
            '<rect x="{}" y="{}" width="{}" height="{}" rx="6" fill="{}" stroke="#212529"/>'
            '<text x="{}" y="{}" font-size="12" font-weight="bold" fill="#fff">{}</text>'
            '<text x="{}" y="{}" font-size="10" fill="#fff">{} · {}</text></g>',
            step_id,
            status,
            x,
            y,
            NODE_W,
            NODE_H,
            STATUS_COLOURS.get(status, "#000"),
            x + 8,
            y + 18,
            step_id[:20],
            x + 8,
            y + 34,
            kind,
            status,
        )
        url = link(step_id) if link else None
        nodes.append(format_html('<a href="{}">{}</a>', url, box) if url else box)
    lines = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#495057" marker-end="url(#wf-arrow)"/>',
        edges,
    )
    return format_html(
        '<svg class="wf-graph" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" '
        'aria-label="{}"><defs><marker id="wf-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#495057"/></marker></defs>{}{}</svg>',
        width,
        height,
        escape("workflow steps"),
        lines,
        mark_safe("".join(nodes)),
    )
