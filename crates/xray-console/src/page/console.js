// The console page: polls the daemon's X-Ray API (the same calls the AWS CLI makes) and draws what it answers.
"use strict";

const REFRESH_MS = 2000;
const state = { selected: null, revision: null, filter: "", timer: null };

const $ = (selector) => document.querySelector(selector);
const el = (tag, attributes = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else if (key === "onclick") node.addEventListener("click", value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
};

async function call(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.message || `${path}: ${response.status}`);
  return answer;
}

function range() {
  const now = Date.now() / 1000;
  return { StartTime: now - Number($("#range").value), EndTime: now + 60 };
}

const seconds = (value) => (value >= 1 ? `${value.toFixed(2)} s` : `${(value * 1000).toFixed(1)} ms`);
const time = (epoch) => new Date(epoch * 1000).toLocaleTimeString();
const path = (url) => { try { return new URL(url).pathname; } catch { return url || ""; } };
const marks = (item) => [
  item.fault && el("span", { class: "mark fault", title: "fault (5xx)" }, "fault"),
  item.error && el("span", { class: "mark error", title: "error (4xx)" }, "error"),
  item.throttle && el("span", { class: "mark throttle", title: "throttled (429)" }, "throttle"),
].filter(Boolean);

async function refreshTraces() {
  const body = range();
  if (state.filter) body.FilterExpression = state.filter;
  let answer;
  try {
    answer = await call("/TraceSummaries", body);
    $("#filter-error").hidden = true;
  } catch (error) {
    $("#filter-error").textContent = error.message;
    $("#filter-error").hidden = false;
    return;
  }
  const rows = answer.TraceSummaries.map((summary) => {
    const http = summary.Http || {};
    const status = http.HttpStatus;
    const row = el("tr", { class: "trace", "data-id": summary.Id, title: summary.Id, onclick: () => select(summary.Id) },
      el("td", {}, time(summary.StartTime)),
      el("td", { class: "root-name" }, summary.EntryPoint ? summary.EntryPoint.Name : ""),
      el("td", {}, http.HttpMethod || ""),
      el("td", { class: "path", title: http.HttpURL || "" }, path(http.HttpURL)),
      el("td", { class: status ? `status-${String(status)[0]}` : "" }, status || ""),
      el("td", { class: "duration" }, seconds(summary.Duration)),
      el("td", {}, marks({ fault: summary.HasFault, error: summary.HasError, throttle: summary.HasThrottle })));
    if (summary.Id === state.selected) {
      row.classList.add("selected");
      if (summary.Revision !== state.revision) showTrace(summary.Id);
    }
    return row;
  });
  $("#traces tbody").replaceChildren(...rows);
  $("#empty").hidden = rows.length > 0;
  $("#count").textContent = `(${rows.length}${answer.NextToken ? "+" : ""} of ${answer.TracesProcessedCount})`;
}

function select(id) {
  state.selected = id;
  state.revision = null;
  history.replaceState(null, "", `#trace=${id}`);
  for (const row of document.querySelectorAll("tr.trace")) row.classList.toggle("selected", row.dataset.id === id);
  showTrace(id);
}

// Every segment and subsegment of the trace, with its depth, in start order under its parent.
function flatten(trace) {
  const documents = trace.Segments.map((segment) => JSON.parse(segment.Document));
  const byId = new Map(documents.map((document) => [document.id, document]));
  const roots = documents.filter((document) => !document.parent_id || !byId.has(document.parent_id) || document.type === "subsegment");
  const childrenOf = new Map();
  for (const document of documents) {
    if (document.parent_id && byId.has(document.parent_id)) {
      if (!childrenOf.has(document.parent_id)) childrenOf.set(document.parent_id, []);
      childrenOf.get(document.parent_id).push(document);
    }
  }
  // A segment called from a subsegment (the backend called by the browser's fetch) goes under that subsegment.
  const nestedParents = new Map();
  const index = (node) => { for (const sub of node.subsegments || []) { nestedParents.set(sub.id, sub); index(sub); } };
  documents.forEach(index);
  for (const document of documents) {
    if (document.parent_id && !byId.has(document.parent_id) && nestedParents.has(document.parent_id)) {
      if (!childrenOf.has(document.parent_id)) childrenOf.set(document.parent_id, []);
      childrenOf.get(document.parent_id).push(document);
    }
  }
  const attached = new Set([...childrenOf.values()].flat().map((document) => document.id));
  const rows = [];
  const walk = (node, depth, isSegment) => {
    rows.push({ node, depth, isSegment });
    const children = [...(node.subsegments || []).map((sub) => [sub, false]), ...(childrenOf.get(node.id) || []).map((doc) => [doc, doc.type !== "subsegment"])];
    children.sort((a, b) => a[0].start_time - b[0].start_time);
    for (const [child, segment] of children) walk(child, depth + 1, segment);
  };
  roots.filter((root) => !attached.has(root.id)).sort((a, b) => a.start_time - b.start_time).forEach((root) => walk(root, 0, root.type !== "subsegment"));
  return rows;
}

function block(title, value) {
  if (value === undefined || value === null || (typeof value === "object" && Object.keys(value).length === 0)) return null;
  return el("div", { class: `block block-${title}` }, el("h3", {}, title), el("pre", {}, JSON.stringify(value, null, 2)));
}

// The cause's exceptions ("type: message"), what failed, shown on the node's row.
function exceptions(node) {
  const list = (node.cause && node.cause.exceptions) || [];
  return list.map((exception) => [exception.type, exception.message].filter(Boolean).join(": ") || "exception");
}

async function showTrace(id) {
  let answer;
  try {
    answer = await call("/Traces", { TraceIds: [id] });
  } catch (error) {
    return;
  }
  const trace = answer.Traces[0];
  $("#trace-panel").hidden = false;
  $("#trace-id").textContent = id;
  if (!trace) {
    $("#trace-facts").textContent = "This trace is no longer in the store.";
    $("#waterfall").replaceChildren();
    return;
  }
  state.revision = trace.Segments.length;
  const rows = flatten(trace);
  const start = Math.min(...rows.map((row) => row.node.start_time));
  const end = Math.max(...rows.map((row) => row.node.end_time || row.node.start_time));
  const total = Math.max(end - start, 1e-6);
  $("#trace-facts").textContent = `${rows.length} segments and subsegments · ${seconds(trace.Duration)} · started ${time(start)}`;
  const items = rows.map(({ node, depth, isSegment }) => {
    const left = ((node.start_time - start) / total) * 100;
    const width = (((node.end_time || end) - node.start_time) / total) * 100;
    const http = node.http || {};
    const request = http.request || {};
    const label = [
      el("span", { class: "span-title" }, node.name),
      request.method ? el("span", { class: "muted" }, ` ${request.method} ${path(request.url)}`) : null,
      http.response && http.response.status ? el("span", { class: `status-${String(http.response.status)[0]}` }, ` ${http.response.status}`) : null,
      " ", ...marks(node),
      node.sql && node.sql.sanitized_query ? el("code", { class: "sql-query", title: node.sql.sanitized_query }, node.sql.sanitized_query.replace(/\s+/g, " ").trim()) : null,
      ...exceptions(node).map((text) => el("span", { class: "exception", title: text }, ` ${text}`)),
    ];
    const details = el("div", { class: "span-details", hidden: true },
      el("div", { class: "muted" }, `id ${node.id}${node.namespace ? ` · namespace ${node.namespace}` : ""}${node.origin ? ` · ${node.origin}` : ""}`),
      block("annotations", node.annotations), block("http", node.http), block("sql", node.sql),
      block("metadata", node.metadata), block("cause", node.cause), block("aws", node.aws));
    const head = el("div", { class: "span-head", onclick: () => { details.hidden = !details.hidden; } },
      el("div", { class: "span-name", style: `padding-left:${depth * 1.1}rem` }, ...label),
      el("div", { class: "bar-track" }, el("div", { class: "bar", style: `left:${left}%;width:${Math.max(width, 0.2)}%` })),
      el("div", { class: "duration" }, node.end_time ? seconds(node.end_time - node.start_time) : "in progress"));
    const item = el("div", { class: `span${node.fault ? " fault" : ""}${node.error ? " error" : ""}`, "data-kind": isSegment ? "segment" : "subsegment", "data-name": node.name, "data-id": node.id }, head, details);
    return item;
  });
  $("#waterfall").replaceChildren(...items);
}

async function refreshMap() {
  let answer;
  try { answer = await call("/ServiceGraph", range()); } catch { return; }
  const services = answer.Services;
  const svg = $("#map");
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attributes) => { const node = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v); return node; };
  // Columns by distance from the client.
  const depth = new Map();
  const byRef = new Map(services.map((service) => [service.ReferenceId, service]));
  const queue = services.filter((service) => service.Type === "client" || service.Root).map((service) => [service, 0]);
  while (queue.length) {
    const [service, level] = queue.shift();
    if (depth.has(service.ReferenceId) && depth.get(service.ReferenceId) >= level) continue;
    if (level > services.length) continue;
    depth.set(service.ReferenceId, level);
    for (const edge of service.Edges) if (byRef.has(edge.ReferenceId)) queue.push([byRef.get(edge.ReferenceId), level + 1]);
  }
  for (const service of services) if (!depth.has(service.ReferenceId)) depth.set(service.ReferenceId, 0);
  const columns = new Map();
  for (const service of services) {
    const level = depth.get(service.ReferenceId);
    if (!columns.has(level)) columns.set(level, []);
    columns.get(level).push(service);
  }
  const width = 190, height = 56, gapX = 60, gapY = 24;
  const position = new Map();
  for (const [level, column] of columns) column.forEach((service, row) => position.set(service.ReferenceId, { x: 10 + level * (width + gapX), y: 10 + row * (height + gapY) }));
  const maxX = Math.max(300, ...[...position.values()].map((p) => p.x + width + 10));
  const maxY = Math.max(120, ...[...position.values()].map((p) => p.y + height + 10));
  svg.setAttribute("viewBox", `0 0 ${maxX} ${maxY}`);
  const defs = make("defs", {});
  const marker = make("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(make("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#6f45d8", stroke: "none" }));
  defs.append(marker);
  const children = [defs];
  for (const service of services) {
    const from = position.get(service.ReferenceId);
    for (const edge of service.Edges) {
      const to = position.get(edge.ReferenceId);
      if (!to) continue;
      const [x1, y1, x2, y2] = [from.x + width, from.y + height / 2, to.x, to.y + height / 2];
      children.push(make("path", { d: `M ${x1} ${y1} C ${x1 + 30} ${y1}, ${x2 - 30} ${y2}, ${x2} ${y2}` }));
    }
  }
  for (const service of services) {
    const p = position.get(service.ReferenceId);
    const stats = service.SummaryStatistics;
    const cls = stats && stats.FaultStatistics.TotalCount ? "node fault" : stats && stats.ErrorStatistics.TotalCount ? "node error" : "node";
    const group = make("g", { class: cls, transform: `translate(${p.x},${p.y})`, "data-name": service.Name });
    group.append(make("rect", { width, height }));
    const name = make("text", { x: 10, y: 22 });
    name.textContent = service.Name.length > 26 ? `${service.Name.slice(0, 25)}…` : service.Name;
    const sub = make("text", { x: 10, y: 42, class: "sub" });
    sub.textContent = stats ? `${service.Type} · ${stats.TotalCount} req · ${seconds(stats.TotalResponseTime / Math.max(stats.TotalCount, 1))} avg` : service.Type;
    group.append(name, sub);
    children.push(group);
  }
  svg.replaceChildren(...children);
}

async function refreshStatus() {
  try {
    const stats = await (await fetch("/console/stats")).json();
    $("#status").textContent = `${stats.traces} traces · ${(stats.bytes / 1048576).toFixed(1)} MB held${stats.dropped ? ` · ${stats.dropped} dropped` : ""}`;
  } catch { /* the daemon is restarting */ }
}

async function tick() {
  await Promise.all([refreshTraces(), refreshMap(), refreshStatus()]);
}

$("#filter-form").addEventListener("submit", (event) => { event.preventDefault(); state.filter = $("#filter").value.trim(); tick(); });
$("#filter").addEventListener("change", () => { state.filter = $("#filter").value.trim(); tick(); });
$("#range").addEventListener("change", tick);
const fromHash = /^#trace=(.+)$/.exec(location.hash);
if (fromHash) select(decodeURIComponent(fromHash[1]));
tick();
state.timer = setInterval(tick, REFRESH_MS);
