/* The dashboard's workflow runs: what /ws/workflow-runs/ said, and each run's step graph drawn from it.
 *
 * window.OrchestratorWorkflows.runs() makes the store the dashboard's socket code feeds (reset from a
 * snapshot, apply per event, false when an event names a run or step the store does not hold, so that
 * the page asks for a fresh snapshot: a run started since the last one). draw(box, store) redraws the
 * runs: active ones first, each an SVG laid out as the admin's graph (workflows/step_graph.py): a
 * column per depth, a box per step coloured by status, an arrow per dependency.
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
  var W = 150, H = 44, GX = 50, GY = 18, PAD = 10;
  var ACTIVE = ["running", "paused", "cancelling"];
  var MAX_SHOWN = 20;
  var SVG = "http://www.w3.org/2000/svg";
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
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function graph(run) {
    var rows = {}, at = {};
    run.steps.forEach(function (step) {
      var row = rows[step.depth] || 0;
      rows[step.depth] = row + 1;
      at[step.step_id] = { x: PAD + step.depth * (W + GX), y: PAD + row * (H + GY) };
    });
    var depths = Object.keys(rows).map(Number);
    var width = PAD * 2 + (Math.max.apply(null, depths.concat([0])) + 1) * (W + GX) - GX;
    var tallest = Math.max.apply(null, depths.map(function (d) { return rows[d]; }).concat([1]));
    var root = svg("svg", { class: "wf-graph", width: width, height: PAD * 2 + tallest * (H + GY) - GY });
    run.steps.forEach(function (step) {
      step.depends_on.forEach(function (parent) {
        if (!at[parent]) return;
        root.appendChild(svg("line", {
          x1: at[parent].x + W, y1: at[parent].y + H / 2, x2: at[step.step_id].x, y2: at[step.step_id].y + H / 2,
          stroke: "#495057",
        }));
      });
    });
    run.steps.forEach(function (step) {
      var p = at[step.step_id];
      var group = svg("g", { class: "wf-step", "data-step": step.step_id, "data-status": step.status });
      group.appendChild(svg("rect", { x: p.x, y: p.y, width: W, height: H, rx: 6,
                                      fill: COLOURS[step.status] || "#000", stroke: "#212529" }));
      group.appendChild(svg("text", { x: p.x + 8, y: p.y + 18, "font-size": 12, "font-weight": "bold",
                                      fill: "#fff" }, step.step_id.slice(0, 20)));
      group.appendChild(svg("text", { x: p.x + 8, y: p.y + 34, "font-size": 10, fill: "#fff" },
                            step.kind + " · " + step.status));
      root.appendChild(group);
    });
    return root;
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
    runs.slice(0, MAX_SHOWN).forEach(function (run) {
      var card = document.createElement("div");
      card.className = "wf-run";
      card.dataset.runId = run.run_id;
      card.dataset.status = run.status;
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
      card.appendChild(graph(run));
      if (operate) {
        [runActions(run, operate), stepActions(run, operate)].forEach(function (bar) {
          if (bar) card.appendChild(bar);
        });
      }
      box.appendChild(card);
    });
  }

  window.OrchestratorWorkflows = { runs: function () { return new Runs(); }, draw: draw };
})();
