/* The dashboard's workflow runs: what /ws/workflow-runs/ said, and each run's step graph drawn from it.
 *
 * window.OrchestratorWorkflows.runs() makes the store the dashboard's socket code feeds (reset from a
 * snapshot, apply per event, false when an event names a run or step the store does not hold, so that
 * the page asks for a fresh snapshot: a run started since the last one). draw(box, store) redraws the
 * runs: active ones first, each an SVG laid out as the admin's graph (workflows/step_graph.py): a
 * column per depth, a box per step coloured by status and labelled as the admin's are (step_label.css),
 * an edge (a line) per dependency. Both wrap a long chain to the width they have; the admin's columns are SVGs
 * of their own in a box that wraps them, while here one SVG draws the columns in bands, one under the
 * other, with an edge down to the next band.
 *
 * With `operate` (given to operators only: the API would refuse viewers), each card offers the verbs
 * its run's status allows, as workflows/runs.py does: Pause (running), Resume (paused), Cancel
 * (running or paused); Retry on a failed or cancelled step of a failed run; Approve and Reject on a
 * step awaiting approval. operate.run(run, "pause"|"resume"|"cancel"), operate.retry(run, step) and
 * operate.decide(run, step, "approve"|"reject") call the API and return a promise that settles when the
 * answer came; the button stays disabled until then (across redraws), and the stream brings the outcome.
 */
(function () {
  "use strict";

  var COLOURS = {
    waiting: "#adb5bd", running: "#0dcaf0", awaiting_approval: "#ffc107", completed: "#198754",
    failed: "#dc3545", skipped: "#6c757d", upstream_failed: "#fd7e14", cancelled: "#495057",
  };
  var W = 150, H = 44, GX = 50, GY = 18, PAD = 10, BAND_GAP = 30;
  var ACTIVE = ["running", "paused", "cancelling"];
  var MAX_SHOWN = 20;
  var SVG = "http://www.w3.org/2000/svg";
  var HTML = "http://www.w3.org/1999/xhtml";
  // What each run status allows (workflows/runs.py); anything else would be a 409.
  var RUN_VERBS = [
    { verb: "pause", label: "Pause", when: ["running"] },
    { verb: "resume", label: "Resume", when: ["paused"] },
    { verb: "cancel", label: "Cancel", when: ["running", "paused"] },
  ];
  var RETRYABLE_STEP = ["failed", "cancelled"]; // and only in a failed run
  // Requests under way, by button key: a redraw (any event redraws every card) keeps them disabled.
  var inFlight = new Set();
  var lastDraw = null;

  function Runs() { this.items = new Map(); }

  Runs.prototype.reset = function (rows) {
    var items = new Map();
    (rows || []).forEach(function (run) { items.set(run.run_id, run); });
    this.items = items;
  };

  Runs.prototype.apply = function (event) {
    var run = this.items.get(event.run_id);
    if (!run) return false;
    if (event.type === "workflow_run.status") {
      run.status = event.status;
      return true;
    }
    var step = run.steps.filter(function (s) { return s.step_id === event.step_id; })[0];
    if (!step) return false;
    step.status = event.status;
    step.attempt = event.attempt;
    return true;
  };

  function svg(tag, attrs, text) {
    return element(SVG, tag, attrs, text);
  }

  function html(tag, attrs, text) {
    return element(HTML, tag, attrs, text);
  }

  function element(namespace, tag, attrs, text) {
    var node = document.createElementNS(namespace, tag);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* A step's label, as the admin's (workflows/step_graph.py): HTML over the step's box, since SVG text
     neither wraps nor cuts ("approval · awaiting_approval" ran past its box). Each line is cut with an
     ellipsis where it would not fit (static/orchestrator/step_label.css); the whole is in the tooltip. */
  function label(step, p) {
    var what = step.kind + " · " + step.status;
    var object = svg("foreignObject", { x: p.x, y: p.y, width: W, height: H });
    var text = html("div", { class: "wf-label", title: step.step_id + ": " + what });
    text.appendChild(html("b", {}, step.step_id));
    text.appendChild(html("span", {}, what));
    object.appendChild(text);
    return object;
  }

  /* Where each step goes: a column per depth (one right of its deepest parent), as in the admin's graph.
     Columns that would not fit in `room` pixels wrap into bands, one under the other, so that a long
     chain stays full size and in sight; a wrapped drawing keeps a margin of GX / 2 on either side for
     the edges that go from one band to the next. */
  function layout(steps, room) {
    var rows = {};
    steps.forEach(function (step) { rows[step.depth] = (rows[step.depth] || 0) + 1; });
    var columns = Math.max.apply(null, Object.keys(rows).map(Number).concat([0])) + 1;
    var fit = function (margin) { return Math.max(1, Math.floor((room - 2 * margin + GX) / (W + GX))); };
    var margin = fit(PAD) >= columns ? PAD : GX / 2;
    var bands = Math.ceil(columns / Math.min(columns, fit(margin)));
    var perBand = Math.ceil(columns / bands); // as even as they go: 3 + 3 rather than 4 + 2
    var tops = [];
    var top = PAD;
    for (var first = 0; first < columns; first += perBand) {
      var tallest = 1;
      for (var depth = first; depth < first + perBand; depth++) tallest = Math.max(tallest, rows[depth] || 0);
      tops.push(top);
      top += tallest * (H + GY) - GY + BAND_GAP;
    }
    var at = {};
    var taken = {};
    steps.forEach(function (step) {
      var row = taken[step.depth] || 0;
      taken[step.depth] = row + 1;
      var band = Math.floor(step.depth / perBand);
      at[step.step_id] = {
        x: margin + (step.depth % perBand) * (W + GX), y: tops[band] + row * (H + GY), band: band,
      };
    });
    return { at: at, tops: tops, width: 2 * margin + perBand * (W + GX) - GX, height: top - BAND_GAP + PAD };
  }

  // An edge: straight within a band; to a later band, out right, down to the gap above the child's band,
  // left, and in from the left.
  function edge(from, to, tops) {
    var y1 = from.y + H / 2, y2 = to.y + H / 2;
    if (from.band === to.band) {
      return svg("line", { x1: from.x + W, y1: y1, x2: to.x, y2: y2, stroke: "#495057" });
    }
    var right = from.x + W + GX / 2, left = to.x - GX / 2, gap = tops[to.band] - BAND_GAP / 2;
    var points = [[from.x + W, y1], [right, y1], [right, gap], [left, gap], [left, y2], [to.x, y2]];
    return svg("polyline", { points: points.join(" "), fill: "none", stroke: "#495057" });
  }

  function graph(run, room) {
    var laid = layout(run.steps, room);
    var at = laid.at;
    // The viewBox lets it shrink (CSS max-width) should the room have been measured wrong.
    var root = svg("svg", { class: "wf-graph", width: laid.width, height: laid.height,
                            viewBox: "0 0 " + laid.width + " " + laid.height });
    run.steps.forEach(function (step) {
      step.depends_on.forEach(function (parent) {
        if (at[parent]) root.appendChild(edge(at[parent], at[step.step_id], laid.tops));
      });
    });
    run.steps.forEach(function (step) {
      var p = at[step.step_id];
      var group = svg("g", { class: "wf-step", "data-step": step.step_id, "data-status": step.status });
      group.appendChild(svg("rect", { x: p.x, y: p.y, width: W, height: H, rx: 6,
                                      fill: COLOURS[step.status] || "#000", stroke: "#212529" }));
      group.appendChild(label(step, p));
      root.appendChild(group);
    });
    return root;
  }

  // The width a card's graph may take: the box's, less its own padding and a card's padding and border.
  function room(box, card) {
    var outer = getComputedStyle(box), inner = getComputedStyle(card);
    var chrome = [outer.paddingLeft, outer.paddingRight, inner.paddingLeft, inner.paddingRight,
                  inner.borderLeftWidth, inner.borderRightWidth];
    return chrome.reduce(function (left, value) { return left - (parseFloat(value) || 0); }, box.clientWidth);
  }

  // A button that stays disabled while its request is in flight, then lets the cards be redrawn.
  function verbButton(key, label, call) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button";
    button.textContent = label;
    button.dataset.key = key;
    button.disabled = inFlight.has(key);
    button.addEventListener("click", function () {
      if (inFlight.has(key)) return;
      inFlight.add(key);
      button.disabled = true;
      Promise.resolve(call()).finally(function () {
        inFlight.delete(key);
        if (lastDraw) draw(lastDraw.box, lastDraw.store, lastDraw.operate);
      });
    });
    return button;
  }

  function runActions(run, operate) {
    var bar = document.createElement("div");
    bar.className = "wf-actions";
    RUN_VERBS.forEach(function (entry) {
      if (entry.when.indexOf(run.status) < 0) return;
      bar.appendChild(verbButton(run.run_id + ":" + entry.verb, entry.label, function () {
        return operate.run(run, entry.verb);
      }));
    });
    return bar.childNodes.length ? bar : null;
  }

  function stepActions(run, operate) {
    var bar = document.createElement("div");
    bar.className = "wf-decisions";
    run.steps.forEach(function (step) {
      var buttons = [];
      if (step.status === "awaiting_approval") {
        ["approve", "reject"].forEach(function (verb) {
          buttons.push(verbButton(run.run_id + ":" + step.step_id + ":" + verb,
                                  verb === "approve" ? "Approve" : "Reject",
                                  function () { return operate.decide(run, step, verb); }));
        });
      } else if (run.status === "failed" && RETRYABLE_STEP.indexOf(step.status) >= 0) {
        buttons.push(verbButton(run.run_id + ":" + step.step_id + ":retry", "Retry",
                                function () { return operate.retry(run, step); }));
      }
      if (!buttons.length) return;
      var line = document.createElement("span");
      line.className = "wf-decision";
      line.dataset.step = step.step_id;
      line.appendChild(document.createTextNode(step.step_id + ": "));
      buttons.forEach(function (button) { line.appendChild(button); });
      bar.appendChild(line);
    });
    return bar.childNodes.length ? bar : null;
  }

  function draw(box, store, operate) {
    lastDraw = { box: box, store: store, operate: operate };
    var runs = Array.from(store.items.values());
    runs.sort(function (a, b) {
      var active = (ACTIVE.indexOf(b.status) >= 0) - (ACTIVE.indexOf(a.status) >= 0);
      return active || Date.parse(b.created_at) - Date.parse(a.created_at);
    });
    box.textContent = "";
    if (!runs.length) {
      var empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "No workflow run yet.";
      box.appendChild(empty);
      return;
    }
    var space = null;
    runs.slice(0, MAX_SHOWN).forEach(function (run) {
      var card = document.createElement("div");
      card.className = "wf-run";
      card.dataset.runId = run.run_id;
      card.dataset.status = run.status;
      box.appendChild(card); // styled, so that the room for its graph can be measured
      if (space === null) space = room(box, card);
      var title = document.createElement("h3");
      var link = document.createElement("a");
      link.href = "/admin/workflows/workflowrun/" + run.run_id + "/change/";
      link.textContent = run.workflow + " v" + run.version;
      title.appendChild(link);
      var status = document.createElement("span");
      status.className = "wf-run-status";
      status.textContent = " " + run.status;
      title.appendChild(status);
      card.appendChild(title);
      card.appendChild(graph(run, space));
      if (operate) {
        [runActions(run, operate), stepActions(run, operate)].forEach(function (bar) {
          if (bar) card.appendChild(bar);
        });
      }
    });
    lastDraw.width = box.clientWidth;
  }

  // The graphs wrap to the page's width: a window made narrower or wider draws them again.
  var redrawing = false;
  window.addEventListener("resize", function () {
    if (redrawing || !lastDraw) return;
    redrawing = true;
    requestAnimationFrame(function () {
      redrawing = false;
      if (lastDraw.box.clientWidth !== lastDraw.width) draw(lastDraw.box, lastDraw.store, lastDraw.operate);
    });
  });

  window.OrchestratorWorkflows = { runs: function () { return new Runs(); }, draw: draw };
})();
