/* The dashboard's state: what the live streams said about tasks and agents, with their counts by status.
 *
 * The page draws its count tiles and its table rows from this one state, in the same step. (The tiles
 * used to come from a summary request made a second or so after the rows had moved, so a task could show
 * `completed` while the tiles still said 1 running, 0 completed.)
 *
 * A store starts from a snapshot: rows and counts the server read at one instant, in one transaction
 * (monitoring/consumers.py, `counts=true`). Each event then moves one item: its count goes from the
 * status the store holds for it to the new one, together with its row. An event that is not newer than
 * what the store holds repeats a change the snapshot already had, and changes nothing. An event about an
 * item the store does not hold is placed only if the store can tell that the item is new since the
 * snapshot: a task created after the snapshot's `complete_after` (any task created later would be in it).
 * Otherwise the item's previous status is unknown: `apply` returns false, the page asks the server for a
 * fresh snapshot, and the item waits for it. Counts never guess.
 *
 * No DOM here: window.OrchestratorBoard.tasks() and .agents() make the two stores.
 */
(function () {
  "use strict";

  function time(iso) {
    return iso ? Date.parse(iso) : NaN;
  }

  function zeros(statuses) {
    var counts = {};
    statuses.forEach(function (status) { counts[status] = 0; });
    return counts;
  }

  function Store(kind) {
    this.kind = kind;
    this.items = new Map();
    this.counts = zeros(kind.statuses);
    this.floor = -Infinity; // every item created after this is held, or new since the snapshot
  }

  Store.prototype.reset = function (rows, counts, completeAfter) {
    var key = this.kind.idKey;
    var items = new Map();
    rows.forEach(function (row) { items.set(row[key], Object.assign({}, row)); });
    this.items = items;
    this.counts = Object.assign(zeros(this.kind.statuses), counts || {});
    this.floor = completeAfter ? time(completeAfter) : -Infinity;
    this.trim();
  };

  Store.prototype.count = function (status, delta) {
    if (Object.prototype.hasOwnProperty.call(this.counts, status)) this.counts[status] += delta;
  };

  /* Apply one event. Returns false when the store cannot place it without a fresh snapshot. */
  Store.prototype.apply = function (event) {
    var id = event[this.kind.idKey];
    var current = this.items.get(id);
    var gone = event.status === this.kind.gone;
    if (current) {
      if (!this.kind.newer(current, event)) return true; // a repeat of what the snapshot had
      this.count(current.status, -1);
      if (gone) {
        this.items.delete(id);
        return true;
      }
      this.count(event.status, 1);
      var kept = Object.assign({}, current);
      // What the last transition said of itself (its timings, its call's outcome) is not the next one's.
      (this.kind.transient || []).forEach(function (field) { delete kept[field]; });
      this.items.set(id, Object.assign(kept, event));
      return true;
    }
    var created = this.kind.createdAt(event);
    if (!(created > this.floor)) return false; // the snapshot may have counted it under another status
    if (!gone) {
      this.count(event.status, 1);
      this.items.set(id, Object.assign({ created_at: new Date(created).toISOString() }, event));
      this.trim();
    }
    return true;
  };

  /* Hold at most kind.limit items: the oldest go, and the floor rises past them. */
  Store.prototype.trim = function () {
    var limit = this.kind.limit;
    if (!limit || this.items.size <= limit) return;
    var byAge = this.sorted(function (a, b) { return time(b.created_at) - time(a.created_at); });
    var store = this;
    byAge.slice(limit).forEach(function (item) {
      store.items.delete(item[store.kind.idKey]);
      store.floor = Math.max(store.floor, time(item.created_at));
    });
  };

  /* Take `field` from `rows` (the summary's, say) for the items the store holds, where theirs is later:
     what the streams leave out, as an agent's heartbeat (every few seconds per agent, it is not an
     event). That field only: statuses, and so the counts, move with the streams alone. Returns whether
     anything changed. */
  Store.prototype.refresh = function (rows, field) {
    var key = this.kind.idKey;
    var items = this.items;
    var changed = false;
    (rows || []).forEach(function (row) {
      var item = items.get(row[key]);
      if (!item || !row[field] || time(item[field]) >= time(row[field])) return;
      item[field] = row[field];
      changed = true;
    });
    return changed;
  };

  Store.prototype.sorted = function (compare) {
    return Array.from(this.items.values()).sort(compare);
  };

  var TASKS = {
    idKey: "task_id",
    statuses: ["pending", "assigned", "running", "completed", "failed", "cancelled"],
    gone: null,
    limit: 250, // the snapshot's 200 active and 50 finished
    // Fields a transition's message carries about that transition only (tasks/transitions.py).
    transient: [
      "queue_wait_seconds", "dispatch_latency_seconds", "duration_seconds", "retry_in_seconds",
      "failover_seconds", "agent_call_outcome",
    ],
    newer: function (current, incoming) {
      var was = current.attempt || 0;
      var now = incoming.attempt || 0;
      if (incoming.attempt !== undefined && now !== was) return now > was;
      return time(incoming.timestamp) >= time(current.timestamp);
    },
    // Only a creation says when a task was created; of any other event the store cannot tell.
    createdAt: function (event) {
      return event.kind === "created" ? time(event.timestamp) : NaN;
    },
  };

  var AGENTS = {
    idKey: "agent_id",
    statuses: ["online", "draining", "unhealthy", "offline"],
    gone: "unregistered",
    limit: 0,
    newer: function (current, incoming) {
      return time(incoming.timestamp) >= time(current.timestamp);
    },
    // Agent events carry no creation time (nor a name): an agent the store does not hold waits for a
    // snapshot, which brings both. Agents come and go rarely.
    createdAt: function () {
      return NaN;
    },
  };

  window.OrchestratorBoard = {
    tasks: function () { return new Store(TASKS); },
    agents: function () { return new Store(AGENTS); },
  };
})();
