/* Operator dashboard: follows /ws/tasks/ and /ws/agents/ for its tiles and tables, and polls
 * /dashboard/api/summary for the rest (queue by capability, charts, version, workers, beat).
 *
 * Tiles and rows are drawn together from one state (board.js): each socket's snapshot sets it, each
 * event moves an item and its count at once, and what the state cannot place asks the socket for a
 * fresh snapshot. The summary is refreshed at most once a second while events flow, every 5 s otherwise.
 * Heartbeats are no events (every agent sends one every few seconds): each summary brings the agents'
 * latest, so that "Last heartbeat" is never more than a summary behind.
 */
(function () {
  "use strict";

  var root = document.getElementById("dashboard");
  if (!root) return;
  var SUMMARY_URL = root.dataset.summaryUrl;
  // Viewers get no buttons: the API would refuse what they ask.
  var CAN_OPERATE = root.dataset.canOperate === "true";
  var MAX_TASK_ROWS = 50;
  // A fresh snapshot now and then mends what a lost event (Redis away, say) left stale.
  var RESNAPSHOT_MS = 30000;

  var board = {
    tasks: window.OrchestratorBoard.tasks(),
    agents: window.OrchestratorBoard.agents(),
    runs: window.OrchestratorWorkflows.runs(),
    routing: {},
  };
  var sockets = {};
  var charts = {};
  var summaryTimer = null;
  var lastSummaryAt = 0;

  // --- helpers ----------------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  function ago(iso) {
    if (!iso) return "never";
    var seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 120) return seconds + " s ago";
    if (seconds < 7200) return Math.round(seconds / 60) + " min ago";
    return Math.round(seconds / 3600) + " h ago";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 120) return seconds.toFixed(1) + " s";
    return Math.round(seconds / 60) + " min";
  }

  function showMessage(text, isError) {
    var node = $("dash-message");
    node.textContent = text;
    node.className = "dash-message" + (isError ? " error" : "");
    node.hidden = false;
    clearTimeout(showMessage.timer);
    showMessage.timer = setTimeout(function () { node.hidden = true; }, 6000);
  }

  // --- connection indicator ---------------------------------------------------------------------
  function updateIndicator() {
    var states = Object.keys(sockets).map(function (name) { return sockets[name].state; });
    var state = states.every(function (s) { return s === "live"; }) ? "live"
      : states.some(function (s) { return s === "refused"; }) ? "refused"
      : states.some(function (s) { return s === "reconnecting"; }) ? "reconnecting" : "connecting";
    var labels = { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…",
                   refused: "Not allowed" };
    var node = $("connection");
    node.dataset.state = state;
    node.className = "conn conn-" + state;
    node.querySelector(".label").textContent = labels[state];
  }

  // --- WebSockets -------------------------------------------------------------------------------
  function connect(name, path) {
    var entry = sockets[name] || (sockets[name] = { state: "connecting", retry: 0 });
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + location.host + path);
    entry.ws = ws;
    entry.asked = false;
    ws.onmessage = function (message) {
      var data = JSON.parse(message.data);
      var store = board[name];
      if (data.type === "snapshot") {
        entry.state = "live";
        entry.retry = 0;
        entry.asked = false;
        store.reset(data[name], data.counts, data.complete_after);
        updateIndicator();
      } else if (data.type === "batch") {
        var placed = data.events.map(function (event) { return store.apply(event); });
        if (placed.indexOf(false) >= 0) askSnapshot(name);
        scheduleSummary(1000);
      } else if (data.type === "error") {
        showMessage(data.detail, true);
        entry.asked = false;
        return;
      }
      render(); // tiles and rows, from the state just changed, in one go
    };
    ws.onclose = function (event) {
      if (event.code === 4401 || event.code === 4403) {
        entry.state = "refused";
        updateIndicator();
        return;
      }
      entry.state = "reconnecting";
      updateIndicator();
      var delay = Math.min(10000, 500 * Math.pow(2, entry.retry++)) * (0.5 + Math.random() / 2);
      setTimeout(function () { connect(name, path); }, delay);
    };
  }

  function askSnapshot(name) {
    var entry = sockets[name];
    if (!entry || entry.asked || !entry.ws || entry.ws.readyState !== WebSocket.OPEN) return;
    entry.asked = true;
    entry.ws.send(JSON.stringify({ type: "snapshot" }));
  }

  // --- rendering --------------------------------------------------------------------------------
  function renderCounters(id, store, kind) {
    var box = $(id);
    var counts = store.counts;
    box.textContent = "";
    Object.keys(counts).forEach(function (status) {
      box.appendChild(el("div", { className: "counter " + kind + "-" + status, "data-status": status }, [
        el("span", { className: "value", text: String(counts[status] || 0) }),
        el("span", { className: "name", text: status }),
      ]));
    });
  }

  function badge(status) {
    return el("span", { className: "badge badge-" + status, text: status.replace("_", " ") });
  }

  /* A task back in the queue after a failed attempt says why it waits: a prompt failover to an agent it
     has not tried (the one that refused gets it back after failover_seconds), or its backoff. */
  function retryNote(task) {
    // The store drops these with the next transition: present, they are the latest one's.
    if (task.status !== "pending" || task.retry_in_seconds === undefined || task.retry_in_seconds === null) {
      return null;
    }
    var failingOver = task.failover_seconds !== undefined && task.failover_seconds !== null;
    return el("span", {
      className: "retry-note",
      title: failingOver
        ? "refused by its agent: due now on an agent it has not tried; that agent may have it back after "
          + duration(task.failover_seconds)
        : "attempt " + (task.attempt || 0) + " failed; the next one waits its backoff",
      text: failingOver ? "failing over" : "retry after " + duration(task.retry_in_seconds),
    });
  }

  function actionButton(label, onClick) {
    var button = el("button", { type: "button", className: "button dash-action", text: label });
    button.addEventListener("click", onClick);
    return button;
  }

  function emptyRow(tbody, columns, text) {
    tbody.appendChild(el("tr", { className: "empty" }, [el("td", { colspan: String(columns), text: text })]));
  }

  function renderTasks() {
    var rows = board.tasks.sorted(function (a, b) { return Date.parse(b.created_at) - Date.parse(a.created_at); });
    var tbody = $("tasks-table").tBodies[0];
    tbody.textContent = "";
    if (!rows.length) return emptyRow(tbody, 8, "No task yet.");
    rows.slice(0, MAX_TASK_ROWS).forEach(function (task) {
      var actions = el("td", { className: "actions" });
      if (CAN_OPERATE && (task.status === "failed" || task.status === "cancelled")) {
        actions.appendChild(actionButton("Retry", function () {
          callApi("POST", "/api/v1/tasks/" + task.task_id + "/retry", "Retry requested");
        }));
      }
      if (CAN_OPERATE && ["pending", "assigned", "running"].indexOf(task.status) >= 0) {
        actions.appendChild(actionButton("Cancel", function () {
          callApi("DELETE", "/api/v1/tasks/" + task.task_id, "Cancel requested");
        }));
      }
      var agent = task.agent_id ? board.agents.items.get(task.agent_id) : null;
      tbody.appendChild(el("tr", { "data-task-id": task.task_id, "data-status": task.status }, [
        el("td", { className: "mono", title: task.task_id, text: task.task_id.slice(0, 8) }),
        el("td", { text: task.task_type || "" }),
        el("td", {}, [badge(task.status), retryNote(task)]),
        el("td", { title: task.agent_id || "", text: agent ? agent.name : (task.agent_id || "–").slice(0, 8) }),
        el("td", { text: String(task.attempt || 0) }),
        el("td", { text: String(task.priority || "") }),
        el("td", { className: "ago", "data-time": task.timestamp, text: ago(task.timestamp) }),
        actions,
      ]));
    });
  }

  function renderAgents() {
    var rows = board.agents.sorted(function (a, b) { return (a.name || "").localeCompare(b.name || ""); });
    var tbody = $("agents-table").tBodies[0];
    tbody.textContent = "";
    if (!rows.length) return emptyRow(tbody, 7, "No agent registered.");
    rows.forEach(function (agent) {
      var load = agent.current_load || 0;
      var max = agent.max_concurrency || 1;
      var bar = el("span", { className: "load" }, [
        el("span", { className: "load-fill", style: "width:" + Math.min(100, Math.round(100 * load / max)) + "%" }),
      ]);
      var actions = el("td", { className: "actions" });
      if (CAN_OPERATE && agent.status === "draining") {
        actions.appendChild(actionButton("Resume", function () {
          callApi("POST", "/api/v1/agents/" + agent.agent_id + "/resume", "Resume requested");
        }));
      } else if (CAN_OPERATE && agent.status !== "offline") {
        actions.appendChild(actionButton("Drain", function () {
          callApi("POST", "/api/v1/agents/" + agent.agent_id + "/drain", "Drain requested");
        }));
      }
      var learned = (board.routing[agent.agent_id] || []).map(function (route) {
        return (route.capability === "*" ? "(any)" : route.capability) + ": " + Math.round(route.latency_ms) +
          " ms, " + (Math.round(1000 * route.success_rate) / 10) + "%";
      }).join("; ");
      tbody.appendChild(el("tr", { "data-agent-id": agent.agent_id, "data-status": agent.status }, [
        el("td", { title: agent.agent_id, text: agent.name || agent.agent_id }),
        el("td", {}, [badge(agent.status)]),
        el("td", {}, [bar, el("span", { className: "load-text", text: " " + load + " / " + max })]),
        el("td", { className: "ago", "data-time": agent.last_heartbeat || "", text: ago(agent.last_heartbeat) }),
        el("td", {}, [badge(agent.circuit_state || "closed")]),
        el("td", { className: "learned", title: "latency and success rate the adaptive strategy learned", text: learned || "–" }),
        actions,
      ]));
    });
  }

  function renderQueue(byCapability) {
    var tbody = $("queue-table").tBodies[0];
    tbody.textContent = "";
    var names = Object.keys(byCapability || {});
    if (!names.length) return emptyRow(tbody, 3, "No task is waiting.");
    names.forEach(function (name) {
      var row = byCapability[name];
      tbody.appendChild(el("tr", { "data-capability": name }, [
        el("td", { text: name === "*" ? "(any)" : name }),
        el("td", { text: String(row.depth) }),
        el("td", { text: duration(row.oldest_age_seconds) }),
      ]));
    });
  }

  function chartSize(box) {
    return { width: Math.max(280, box.clientWidth - 4), height: 180 };
  }

  function renderCharts(rates) {
    if (!rates || !window.uPlot) return;
    var times = rates.buckets.map(function (b) { return b.t; });
    var completed = rates.buckets.map(function (b) { return b.completed; });
    var failed = rates.buckets.map(function (b) { return b.failed; });
    var ratio = rates.buckets.map(function (b) {
      var finished = b.completed + b.failed;
      return finished ? Math.round(1000 * b.failed / finished) / 10 : null;
    });
    var data = { throughput: [times, completed, failed], failures: [times, ratio] };
    if (!charts.throughput) {
      var box = $("chart-throughput");
      charts.throughput = new uPlot(Object.assign(chartSize(box), {
        series: [{}, { label: "completed", stroke: "#2e7d32", fill: "rgba(46,125,50,0.12)" },
                 { label: "failed", stroke: "#c62828", fill: "rgba(198,40,40,0.12)" }],
        axes: [{}, { size: 40 }],
        scales: { y: { range: function (u, min, max) { return [0, Math.max(5, max)]; } } },
      }), data.throughput, box);
      var box2 = $("chart-failures");
      charts.failures = new uPlot(Object.assign(chartSize(box2), {
        series: [{}, { label: "failure %", stroke: "#c62828", spanGaps: true }],
        axes: [{}, { size: 40 }],
        scales: { y: { range: [0, 100] } },
      }), data.failures, box2);
    } else {
      charts.throughput.setData(data.throughput);
      charts.failures.setData(data.failures);
    }
  }

  function render() {
    renderCounters("agent-counters", board.agents, "agent");
    renderCounters("task-counters", board.tasks, "task");
    renderAgents();
    renderTasks();
    window.OrchestratorWorkflows.draw($("workflow-runs"), board.runs, CAN_OPERATE ? operateRuns : null);
  }

  function renderSummary(summary) {
    board.routing = {};
    (summary.routing || []).forEach(function (route) {
      (board.routing[route.agent_id] = board.routing[route.agent_id] || []).push(route);
    });
    board.agents.refresh(summary.agent_list, "last_heartbeat");
    renderAgents();
    renderQueue(summary.queue.by_capability);
    renderCharts(summary.rates);
    $("meta-version").textContent = summary.version;
    $("meta-workers").textContent = summary.workers.count === null ? "unknown" : String(summary.workers.count);
    var beat = summary.beat || {};
    $("meta-beat").textContent = beat.state === "ok" ? "ok (" + duration(beat.last_sweep_age_seconds) + " ago)"
      : (beat.state || "unknown");
    var events = summary.events || {};
    $("meta-events").textContent = events.state === "off" ? "off"
      : (events.state || "unknown") + " (lag " + duration(events.lag_seconds) + ", " + events.unpublished + " waiting)";
    var minute = summary.last_minute;
    $("meta-throughput").textContent = minute.throughput_per_second + " /s";
    $("meta-p95").textContent = duration(minute.duration_seconds.p95);
  }

  // --- data loading -----------------------------------------------------------------------------
  function loadSummary() {
    lastSummaryAt = Date.now();
    return fetch(SUMMARY_URL, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("summary: HTTP " + response.status);
        return response.json();
      })
      .then(renderSummary)
      .catch(function (error) { showMessage(error.message, true); });
  }

  function scheduleSummary(delay) {
    if (summaryTimer) return;
    var wait = Math.max(delay, 1000 - (Date.now() - lastSummaryAt));
    summaryTimer = setTimeout(function () { summaryTimer = null; loadSummary(); }, wait);
  }

  // Settles (never rejects) once the answer is shown: the caller may re-enable its button then.
  function callApi(method, url, done) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      headers: { "X-CSRFToken": cookie("csrftoken"), Accept: "application/json" },
    }).then(function (response) {
      if (response.ok) { showMessage(done, false); return; }
      return response.json().catch(function () { return {}; }).then(function (body) {
        showMessage((body.detail || body.error || ("HTTP " + response.status)) + "", true);
      });
    }).catch(function (error) { showMessage(error.message, true); });
  }

  // The workflow cards' verbs (workflows.js draws their buttons, for operators only).
  var RUN_DONE = { pause: "Paused", resume: "Resumed", cancel: "Cancel requested for" };
  var operateRuns = {
    run: function (run, verb) {
      return callApi("POST", "/api/v1/workflow-runs/" + run.run_id + "/" + verb,
                     RUN_DONE[verb] + " run " + run.run_id.slice(0, 8) + ".");
    },
    retry: function (run, step) {
      return callApi("POST", stepUrl(run, step, "retry"), "Retrying from " + step.step_id + ".");
    },
    decide: function (run, step, verb) {
      return callApi("POST", stepUrl(run, step, verb), (verb === "approve" ? "Approved " : "Rejected ") +
                     step.step_id + ".");
    },
  };

  function stepUrl(run, step, verb) {
    return "/api/v1/workflow-runs/" + run.run_id + "/steps/" + encodeURIComponent(step.step_id) + "/" + verb;
  }

  function tick() {
    document.querySelectorAll("td.ago").forEach(function (cell) {
      cell.textContent = ago(cell.dataset.time || null);
    });
  }

  render();
  loadSummary();
  connect("tasks", "/ws/tasks/?counts=true");
  connect("agents", "/ws/agents/?counts=true");
  connect("runs", "/ws/workflow-runs/");
  updateIndicator();
  setInterval(function () { askSnapshot("tasks"); askSnapshot("agents"); askSnapshot("runs"); }, RESNAPSHOT_MS);
  setInterval(tick, 1000);
  setInterval(function () { scheduleSummary(0); }, 5000);
  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (name) {
      charts[name].setSize(chartSize(document.getElementById("chart-" + name)));
    });
  });
})();
