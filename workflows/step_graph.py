"""A run's steps as a small server-rendered DAG: inline SVGs, steps laid out in columns by depth
(a step sits one column right of its deepest parent), coloured by status, with an edge per dependency;
the columns wrap to the page's width.

No JavaScript and nothing downloaded: the admin shows it as rendered, current as of the page's load.
The dashboard does not use this markup: it draws its own graph in the browser
(static/monitoring/workflows.js) from the /ws/workflow-runs/ snapshot, whose steps carry their column
from depths() here (monitoring/workflow_live.py), and redraws it as the stream's events change a step.
Its colours and labels follow these: a change here wants the same change there.
"""

from django.utils.html import format_html, format_html_join
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


def places(specs):
    """{step_id: (column, row)}, and the number of columns and of rows."""
    columns = {}
    for step_id, depth in depths(specs).items():
        columns.setdefault(depth, []).append(step_id)
    found = {
        step_id: (depth, row) for depth, members in columns.items() for row, step_id in enumerate(members)
    }
    return found, len(columns), max((len(members) for members in columns.values()), default=0)


def _top(row):
    return PAD + row * (NODE_H + GAP_Y)


def _middle(row):
    return _top(row) + NODE_H // 2


def _left(column):
    """Where a column's steps start: after the margin its incoming edges are drawn in."""
    return PAD if column == 0 else GAP_X


def render(specs, statuses, link=None):
    """The graph of a definition's steps: an SVG per column, side by side in a box that wraps them when
    they would not fit the page's width (static/orchestrator/admin.css), as the dashboard's cards do: a
    long chain stays full size and in sight. A column draws the edges into its steps in its left margin
    (so after a wrap, an arrow comes in from the left), and carries an edge that skips it across at its
    parent's height. `statuses`: {step_id: status}; `link(step_id)`: a URL or None."""
    at, column_count, row_count = places(specs)
    height = max(PAD * 2 + row_count * (NODE_H + GAP_Y) - GAP_Y, 0)
    arrows = [[] for _ in range(column_count)]  # (y1, x2, y2): from the column's left edge to a step
    crossings = [[] for _ in range(column_count)]  # (y, x2): across a column an edge skips
    nodes = [[] for _ in range(column_count)]
    for spec in specs:
        column, row = at[spec["id"]]
        for parent in spec.get("depends_on") or []:
            if parent in at:
                parent_column, parent_row = at[parent]
                y = _middle(parent_row)
                for skipped in range(parent_column + 1, column):
                    crossings[skipped].append((y, _left(skipped) + NODE_W))
                arrows[column].append((y, _left(column), _middle(row)))
        nodes[column].append(_node(spec, statuses.get(spec["id"], "waiting"), _left(column), row, link))
    svgs = (
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}">{}{}{}{}</svg>',
            _left(column) + NODE_W,
            height,
            ARROW if column == 0 else "",  # defined once: the other columns' edges name it too
            format_html_join(
                "", '<line x1="0" y1="{0}" x2="{1}" y2="{0}" stroke="#495057"/>', crossings[column]
            ),
            format_html_join(
                "",
                '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="#495057" marker-end="url(#wf-arrow)"/>',
                arrows[column],
            ),
            mark_safe("".join(nodes[column])),
        )
        for column in range(column_count)
    )
    return format_html(
        '<div class="wf-graph" role="img" aria-label="workflow steps">{}</div>', mark_safe("".join(svgs))
    )


ARROW = mark_safe(
    '<defs><marker id="wf-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
    'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#495057"/></marker></defs>'
)


def _node(spec, status, x, row, link):
    """A step's box. Its label is HTML, cut with an ellipsis where it would not fit (step_label.css; SVG
    text neither wraps nor cuts) and whole in its tooltip. Linked to the step's page if `link` gives one."""
    step_id = spec["id"]
    box = format_html(
        '<g class="wf-step" data-step="{id}" data-status="{status}">'
        '<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{colour}" stroke="#212529"/>'
        '<foreignObject x="{x}" y="{y}" width="{w}" height="{h}"><div class="wf-label" '
        'title="{id}: {kind} · {status}"><b>{id}</b><span>{kind} · {status}</span></div></foreignObject></g>',
        id=step_id,
        kind=spec.get("type", "task"),
        status=status,
        x=x,
        y=_top(row),
        w=NODE_W,
        h=NODE_H,
        colour=STATUS_COLOURS.get(status, "#000"),
    )
    url = link(step_id) if link else None
    return format_html('<a href="{}">{}</a>', url, box) if url else box
