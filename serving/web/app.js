// propensity web page: token sign-in, campaign targeting (marketer), customer reasons and monitoring (auditor).
// Plain browser JavaScript, no build step and nothing loaded from elsewhere; charts are inline SVG.
"use strict";

const TOKEN_KEY = "propensity.token";
const SVG_NS = "http://www.w3.org/2000/svg";
const MODELS = ["churn", "response", "value"];
const $ = (id) => document.getElementById(id);
let targetOptions = null; // GET /targets/options of the current run: campaigns and the rankings it allows
let searchSeq = 0; // the latest customer search: answers to older ones are dropped

// RFMW segment ids (features/segments.py SEGMENT_RULES) in words; an unknown id is shown with its "_" as spaces.
const SEGMENT_NAMES = {
  champions: "Champions", loyal_narrow: "Loyal, few categories", loyal: "Loyal", cant_lose_them: "Can't lose them",
  at_risk: "At risk", new_customers: "New customers", promising: "Promising",
  potential_loyalists: "Potential loyalists", about_to_sleep: "About to sleep", hibernating: "Hibernating", lost: "Lost",
};

function segmentName(id) {
  if (id === null || id === undefined) return "no segment";
  const text = SEGMENT_NAMES[id] ?? String(id).replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// -- API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Call the API with the stored token; resolve to JSON, text or a Blob; reject with the API's one-line message. */
async function api(path, { method = "GET", body = undefined, as = "json" } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, `the service cannot be reached (${e.message})`);
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const data = await response.json();
      if (data && data.detail) message = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    } catch (_) { /* not JSON: keep the status line */ }
    throw new ApiError(response.status, message);
  }
  if (as === "blob") return response.blob();
  if (as === "text") return response.text();
  return response.json();
}

function showError(id, error) {
  const el = $(id);
  if (!error) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  const prefix = { 401: "Not signed in: ", 403: "Not allowed: ", 404: "Not found: ", 422: "Check the input: ",
                   503: "Try again shortly: " }[error.status] || "Error: ";
  el.textContent = prefix + error.message;
  el.hidden = false;
}

// -- formatting --------------------------------------------------------------------------

const fmt = {
  int: (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en")),
  num: (v, d = 2) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en", { maximumFractionDigits: d, minimumFractionDigits: d })),
  pct: (v, d = 1) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(d)}%`),
  /** A probability with the digits that tell it from 0% or 100% (99.994%, not 100.0%): as training.explain.share_text. */
  share: (v) => {
    if (v === null || v === undefined) return "–";
    const d = Math.min(v, 1 - v) * 100;
    if (d <= 0) return `${(100 * v).toFixed(0)}%`;
    const decimals = d >= 1 ? 1 : Math.min(10, Math.max(1, Math.ceil(-Math.log10(d) - 1e-9)));
    return `${(100 * v).toFixed(decimals)}%`;
  },
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs = {}, text = undefined) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** "Nice" axis ticks between lo and hi (about n of them). */
function ticks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

/** The API's `missing` list (models a run has no scores of) as plain-words notes in `box`. */
function showMissing(box, missing) {
  const list = missing || [];
  box.replaceChildren(...list.map((m) => el("p", { class: "missing-note", "data-missing": m.model }, m.message)));
  box.hidden = list.length === 0;
}

function byModel(missing) {
  return Object.fromEntries((missing || []).map((m) => [m.model, m]));
}

function table(rows, columns) {
  const head = el("tr", {}, ...columns.map((c) => el("th", {}, c.label)));
  const body = rows.map((r) => el("tr", {}, ...columns.map((c) => el("td", c.num ? { class: "num" } : {}, c.show(r)))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

// -- sign-in -----------------------------------------------------------------------------

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  let me;
  try {
    me = await api("/me");
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw e;
  }
  $("login-view").hidden = true;
  $("logout").hidden = false;
  $("tabs").hidden = false;
  $("whoami").textContent = `signed in as ${me.name} (${me.role})`;
  const marketer = me.role === "marketer" || me.role === "admin";
  const auditor = me.role === "auditor" || me.role === "admin";
  $("tab-marketer").hidden = !marketer;
  $("tab-auditor").hidden = !auditor;
  $("tab-monitoring").hidden = !auditor;
  showView(marketer ? "marketer-view" : "auditor-view");
  if (marketer) loadMarketer();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
}

function showView(id) {
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== id;
  for (const tab of document.querySelectorAll("#tabs button")) tab.classList.toggle("active", tab.dataset.view === id);
}

// -- marketer ----------------------------------------------------------------------------

async function loadMarketer() {
  try {
    const o = await api("/targets/options");
    targetOptions = o;
    showMissing($("marketer-missing"), o.missing);
    const rank = $("rank-by");
    rank.replaceChildren();
    for (const c of o.rank_by) {
      const option = el("option", { value: c.value }, c.available ? c.label : `${c.label}: not available, ${c.why_not}`);
      option.disabled = !c.available;
      rank.append(option);
    }
    rank.value = o.default_rank_by;
    const select = $("campaign");
    select.replaceChildren();
    // Kinds first (a list for the next campaign of a kind), then every campaign id (as GET /campaigns lists them).
    const kinds = [...new Set(o.campaigns.map((c) => c.kind))];
    const byKind = el("optgroup", { label: "Any campaign of a kind", id: "campaign-kinds" });
    for (const kind of kinds) {
      const hasControl = o.campaigns.some((c) => c.kind === kind && c.has_control);
      byKind.append(el("option", { value: kind }, `any ${kind} campaign${hasControl ? " · control groups" : ""}`));
    }
    const byId = el("optgroup", { label: "Campaigns", id: "campaign-ids" });
    for (const c of o.campaigns) {
      byId.append(el("option", { value: c.campaign }, `${c.campaign}: ${c.name} (${c.kind})`));
    }
    if (o.campaigns.length) select.append(byKind, byId);
    else select.append(el("option", { value: "" }, "no campaigns in the warehouse"));
    if (!$("list-name").value) $("list-name").value = `list-${o.as_of}`;
    updateTargetForm();
    showError("target-error", null);
  } catch (e) {
    showError("target-error", e);
  }
  try {
    const summary = await api("/segments/summary");
    const absent = byModel(summary.missing);
    if ($("marketer-missing").hidden) showMissing($("marketer-missing"), summary.missing);
    const columns = [
      { label: "RFMW segment", show: (r) => segmentName(r.value) },
      { label: "customers", num: true, show: (r) => fmt.int(r.customers) },
      { label: "churn risk", num: true, needs: "churn", show: (r) => fmt.pct(r.mean_churn_risk) },
      { label: "response", num: true, needs: "response", show: (r) => fmt.pct(r.mean_response_prob) },
      { label: "predicted value", num: true, needs: "value", show: (r) => fmt.num(r.mean_predicted_value) },
      { label: "expected profit", num: true, needs: "response", show: (r) => fmt.num(r.mean_expected_profit) },
    ];
    const shown = columns.filter((c) => !c.needs || !absent[c.needs]);
    const left = columns.filter((c) => c.needs && absent[c.needs]).map((c) => c.label);
    const box = $("segments");
    box.replaceChildren(
      el("p", { class: "muted" }, `scoring run ${summary.run_id} as of ${summary.as_of}: ${fmt.int(summary.customers)} customers`),
      table(summary.by.rfmw_segment, shown),
    );
    if (left.length) {
      box.append(el("p", { class: "muted", id: "segments-left-out" },
                    `Not shown, the run has no model for them: ${left.join(", ")}.`));
    }
  } catch (e) {
    $("segments").replaceChildren(el("p", { class: "error" }, e.message));
  }
}

/** The ranking chosen in the form (from /targets/options), or undefined before the options are loaded. */
function rankChoice() {
  return targetOptions ? targetOptions.rank_by.find((c) => c.value === $("rank-by").value) : undefined;
}

/** Campaign or free list name, margin or not: what the chosen ranking needs. */
function updateTargetForm() {
  const choice = rankChoice();
  const needsCampaign = !choice || choice.needs_campaign;
  const profit = !choice || choice.has_profit;
  for (const id of ["campaign", "campaign-label"]) $(id).hidden = !needsCampaign;
  for (const id of ["list-name", "list-name-label"]) $(id).hidden = needsCampaign;
  for (const id of ["margin", "margin-label"]) $(id).hidden = !profit;
  const note = $("rank-note");
  note.textContent = profit ? "" :
    "This ranking has no profit estimate (that needs a response model): the list is the top customers " +
    "the budget pays for (contacts = budget / cost per contact), plus the control group.";
  note.hidden = profit;
}

function numberOrNull(id) {
  const text = $(id).value.trim();
  return text === "" ? null : Number(text);
}

async function buildTargets(event) {
  event.preventDefault();
  showError("target-error", null);
  const choice = rankChoice();
  const needsCampaign = !choice || choice.needs_campaign;
  const body = {
    campaign: needsCampaign ? $("campaign").value : $("list-name").value.trim(),
    rank_by: $("rank-by").value || "auto",
    budget: numberOrNull("budget"),
    cost: numberOrNull("cost"),
    control: (numberOrNull("control") ?? 0) / 100,
  };
  if (!choice || choice.has_profit) body.margin = numberOrNull("margin");
  clearTargets();
  if (!body.campaign) {
    showError("target-error", new ApiError(422, needsCampaign ? "choose a campaign" : "give the list a name"));
    return;
  }
  $("target-busy").hidden = false;
  $("build").disabled = true;
  try {
    const result = await api("/targets", { method: "POST", body });
    showTargets(result);
  } catch (e) {
    showError("target-error", e);
  } finally {
    $("target-busy").hidden = true;
    $("build").disabled = false;
  }
}

/** Take the last list off the page (before a new one is built, so an error never stands above an old list). */
function clearTargets() {
  $("target-result").hidden = true;
  for (const id of ["target-summary", "target-notes", "gain-chart", "gain-best"]) $(id).replaceChildren();
  $("list-id").textContent = "";
  const link = $("download");
  link.href = "#";
  delete link.dataset.url;
  delete link.dataset.ready;
}

function showTargets(result) {
  const s = result.summary;
  const r = result.ranking;
  const known = (v) => v !== null && v !== undefined;
  const facts = [
    ["ranked by", r.measure, "ranked-by"],
    ["audience", fmt.int(s.audience)],
    ["contacted", fmt.int(s.contacted)],
    ["control group", fmt.int(s.control)],
  ];
  if (known(s.expected_responders)) facts.push(["expected responders", fmt.num(s.expected_responders, 1)]);
  facts.push(["cost", fmt.num(s.cost)]);
  if (known(s.expected_profit)) facts.push(["expected profit", fmt.num(s.expected_profit)]);
  if (known(s.incremental_profit)) facts.push(["incremental profit", fmt.num(s.incremental_profit)]);
  if (!r.has_profit && known(r.contacted_total)) {
    facts.push([`${r.measure} of the contacted`, r.method === "churn" ? fmt.num(r.contacted_total, 1) : fmt.num(r.contacted_total),
                "ranked-total"]);
  }
  const dl = $("target-summary");
  dl.replaceChildren();
  for (const [k, v, key] of facts) {
    dl.append(el("div", { class: "card", "data-fact": key || k.replace(/\s+/g, "-") }, el("dt", {}, k), el("dd", {}, v)));
  }
  const notes = [`Ranked by ${r.label}${r.because ? `: ${r.because}` : ""}.`];
  if (!r.has_profit) {
    const response = byModel(result.missing).response;
    notes.push("No expected responders or profit for this list" +
               (response ? `. ${response.message}` : ": this ranking has no profit estimate."));
  }
  $("target-notes").replaceChildren(...notes.concat(result.notes || []).map((n) => el("li", {}, n)));
  $("gain-caption").textContent =
    `Gain curve: ${r.measure} added up over the customers contacted so far (${r.axis}), by share of the ` +
    `audience contacted, ranked by ${r.measure} vs a random order`;
  const audience = Math.max(1, s.audience || 1);
  const best = r.has_profit ? bestPoint(result.gain) : null;
  gainChart($("gain-chart"), result.gain, ((s.contacted || 0) + (s.control || 0)) / audience, r, best);
  $("gain-best").replaceChildren(bestWords(best, result.gain, r, s));
  $("list-id").textContent = result.list_id;
  $("target-result").hidden = false;
  const link = $("download");
  link.dataset.url = result.download_url;
  link.setAttribute("download", `target-${result.list_id}.csv`);
  link.href = "#";
}

async function download(event) {
  // The list needs the token, which a plain link cannot send: fetch it, then save the blob.
  const link = event.currentTarget;
  if (link.dataset.ready === link.dataset.url) return; // the blob URL is in place: let the browser save it
  event.preventDefault();
  try {
    const blob = await api(link.dataset.url, { as: "blob" });
    link.href = URL.createObjectURL(blob);
    link.dataset.ready = link.dataset.url;
    link.click();
  } catch (e) {
    showError("target-error", e);
  }
}

/** The ranked measure (profit, value at risk, ...) summed over the share contacted: the ranking, and a random order. */
/** The gain point with the highest cumulative profit (the first such, so the smallest list). */
function bestPoint(points) {
  if (!points.length) return null;
  return points.reduce((best, p) => (p.cumulative > best.cumulative ? p : best), points[0]);
}

/** The profit-maximising list size in words (or why a ranking has none). */
function bestWords(best, points, ranking, summary) {
  if (!ranking.has_profit) {
    return `Ranked by ${ranking.measure}, which is not profit: the curve only rises, so it has no profit-maximising size.`;
  }
  if (!best) return "";
  const last = points[points.length - 1];
  const size = `the top ${fmt.int(best.customers)} customers (${fmt.pct(best.share_contacted, 0)} of the audience)`;
  const mine = `This list contacts ${fmt.int(summary.contacted)}.`;
  if (best.customers <= 0) {
    return `No contact is expected to pay: ${ranking.measure} is highest with nobody contacted. ${mine}`;
  }
  if (best === last) {
    return `${ranking.measure[0].toUpperCase()}${ranking.measure.slice(1)} still rises with the last customer: ` +
           `contacting everyone (${fmt.int(best.customers)}) gives the most, ${fmt.num(best.cumulative)}. ${mine}`;
  }
  return `${ranking.measure[0].toUpperCase()}${ranking.measure.slice(1)} is highest, ${fmt.num(best.cumulative)}, ` +
         `when ${size} are contacted (marked on the chart); each contact beyond that is expected to lose money. ${mine}`;
}

function gainChart(box, points, contactedShare, ranking, best = null) {
  const W = 640, H = 320, m = { l: 70, r: 20, t: 16, b: 44 };
  const ys = points.flatMap((p) => [p.cumulative, p.cumulative_random]);
  let lo = Math.min(0, ...ys), hi = Math.max(0, ...ys);
  if (hi === lo) hi = lo + 1;
  const x = (v) => m.l + v * (W - m.l - m.r);
  const y = (v) => H - m.b - ((v - lo) / (hi - lo)) * (H - m.t - m.b);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "gain curve", id: "gain-svg" });
  const tickText = hi - lo < 20 ? (t) => fmt.num(t, 1) : fmt.int;
  for (const t of ticks(lo, hi)) {
    chart.append(svg("line", { x1: m.l, x2: W - m.r, y1: y(t), y2: y(t), class: "grid" }));
    chart.append(svg("text", { x: m.l - 6, y: y(t) + 4, "text-anchor": "end", class: "tick" }, tickText(t)));
  }
  for (const t of [0, 0.2, 0.4, 0.6, 0.8, 1]) {
    chart.append(svg("text", { x: x(t), y: H - m.b + 16, "text-anchor": "middle", class: "tick" }, `${t * 100}%`));
  }
  chart.append(svg("text", { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle", class: "axis" }, "share of the audience contacted"));
  chart.append(svg("text", { x: 14, y: (m.t + H - m.b) / 2, "text-anchor": "middle", class: "axis", id: "gain-y-label",
                             transform: `rotate(-90 14 ${(m.t + H - m.b) / 2})` }, ranking.axis));
  chart.append(svg("line", { x1: m.l, x2: W - m.r, y1: y(0), y2: y(0), class: "zero" }));
  const line = (key) => points.map((p) => `${x(p.share_contacted).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
  chart.append(svg("polyline", { points: line("cumulative_random"), class: "random", "data-series": "random" }));
  chart.append(svg("polyline", { points: line("cumulative"), class: "model", "data-series": "model" }));
  const cut = Math.min(1, Math.max(0, contactedShare));
  chart.append(svg("line", { x1: x(cut), x2: x(cut), y1: m.t, y2: H - m.b, class: "cut" }));
  chart.append(svg("text", { x: x(cut) + 4, y: m.t + 12, class: "tick" }, `list: ${fmt.pct(cut)}`));
  if (best) {
    const bx = x(best.share_contacted), by = y(best.cumulative);
    chart.append(svg("line", { x1: bx, x2: bx, y1: by, y2: H - m.b, class: "best-line" }));
    const dot = svg("circle", { cx: bx, cy: by, r: 5, class: "best", id: "gain-best-point",
                                "data-customers": best.customers, "data-cumulative": best.cumulative });
    dot.append(svg("title", {}, `highest ${ranking.measure}: ${fmt.num(best.cumulative)} at ${fmt.int(best.customers)} customers`));
    chart.append(dot);
    chart.append(svg("text", { x: bx + 7, y: by - 8, class: "tick best-label" },
                     `best: ${fmt.int(best.customers)} (${fmt.pct(best.share_contacted, 0)})`));
  }
  const legend = svg("g", { transform: `translate(${W - m.r - 190}, ${H - m.b - 40})` });
  legend.append(svg("line", { x1: 0, x2: 20, y1: 0, y2: 0, class: "model" }));
  legend.append(svg("text", { x: 26, y: 4, class: "tick" }, `ranked by ${ranking.measure}`));
  legend.append(svg("line", { x1: 0, x2: 20, y1: 18, y2: 18, class: "random" }));
  legend.append(svg("text", { x: 26, y: 22, class: "tick" }, "random order"));
  chart.append(legend);
  box.replaceChildren(chart);
}

// -- auditor -----------------------------------------------------------------------------

/** Close the document panel (model card or lineage) and empty it. */
function closeDocument() {
  $("doc-panel").hidden = true;
  $("doc-title").textContent = "";
  $("doc-frame").removeAttribute("srcdoc");
  $("doc-lineage").replaceChildren();
  showMissing($("doc-note"), []);
}

/** Take the last customer off the page: a new look-up (or its error) never stands above an old one. */
function clearCustomer() {
  $("customer-result").hidden = true;
  $("models").replaceChildren();
  $("customer-tables").replaceChildren();
  $("customer-head").textContent = "";
  $("recompute-result").textContent = "";
  closeDocument();
}

async function lookUp(event) {
  event.preventDefault();
  showError("customer-error", null);
  const id = $("customer-id").value.trim();
  if (!id) return;
  clearCustomer();
  searchSeq += 1; // a search still in flight must not reopen the matches
  $("customer-matches").replaceChildren();
  try {
    const c = await api(`/customers/${encodeURIComponent(id)}`);
    showCustomer(c);
  } catch (e) {
    showError("customer-error", e);
  }
}

/** Customer ids starting with what is typed (GET /customers?prefix=), as buttons that look the customer up. */
async function searchCustomers() {
  const prefix = $("customer-id").value.trim();
  const seq = ++searchSeq;
  const box = $("customer-matches");
  if (!prefix) {
    box.replaceChildren();
    return;
  }
  let found;
  try {
    found = await api(`/customers?prefix=${encodeURIComponent(prefix)}&limit=10`);
  } catch (_) {
    if (seq === searchSeq) box.replaceChildren();
    return; // the look-up itself says what is wrong
  }
  if (seq !== searchSeq) return;
  if (!found.customers.length) {
    box.replaceChildren(el("span", { class: "muted" }, `no customer id starts with "${prefix}"`));
    return;
  }
  const buttons = found.customers.map((id) => {
    const b = el("button", { type: "button", class: "match", "data-customer": id }, id);
    b.addEventListener("click", () => {
      $("customer-id").value = id;
      lookUp({ preventDefault: () => {} });
    });
    return b;
  });
  box.replaceChildren(el("span", { class: "muted" }, "matching ids:"), ...buttons,
                      ...(found.more ? [el("span", { class: "muted" }, "and more: type more of the id")] : []));
}

function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A score as the page shows it: a probability with its telling digits, or an amount. */
function scoreText(model, value) {
  return model === "value" ? fmt.num(value) : fmt.share(value);
}

function showCustomer(c) {
  const absent = byModel(c.missing);
  const score = (model, value) => (absent[model] ? `no ${model} model` : scoreText(model, value));
  $("customer-head").textContent =
    `customer ${c.customer_id} in scoring run ${c.run_id} (as of ${c.as_of}): ` +
    `segment ${segmentName(c.segments.rfmw_segment)}, churn risk ${score("churn", c.scores.churn_risk)}, ` +
    `response ${score("response", c.scores.response_prob)}, ` +
    `predicted value ${score("value", c.scores.predicted_value)}`;
  const lineage = $("lineage-link");
  lineage.dataset.url = c.lineage_url;
  lineage.dataset.title = `lineage of run ${c.run_id}`;
  $("recompute").dataset.url = c.explain_url;
  $("recompute-result").textContent = "";
  const box = $("models");
  box.replaceChildren();
  const named = MODELS.concat(c.models.map((m) => m.model).filter((n) => !MODELS.includes(n)));
  for (const name of named) {
    const m = c.models.find((x) => x.model === name);
    if (!m) {
      if (absent[name]) box.append(missingCard(absent[name]));
      continue;
    }
    const card = el("article", { class: "model", "data-model": m.model });
    const cardLink = el("a", { href: "#", class: "card-link", "data-url": m.card_url, "data-title": `${m.model} model card` },
                        "model card");
    card.append(el("h3", {}, `${m.model} `, el("span", { class: "muted" }, `version ${m.version ?? "?"}`),
                   ` · ${scoreText(m.model, m.score)} · `, cardLink));
    const chartBox = el("div", { class: "chart waterfall" });
    card.append(chartBox);
    if (m.waterfall && m.base_raw !== null && m.base_raw !== undefined) {
      waterfallChart(chartBox, m);
      card.append(el("p", { class: "muted scale-note" }, m.scale_note ?? ""));
    } else {
      chartBox.append(el("p", { class: "muted" }, "no waterfall: this model version cannot be loaded from the registry"));
    }
    card.append(el("ol", { class: "reasons" }, ...m.reasons.map((r) =>
      el("li", { "data-feature": r.feature }, r.text, el("span", { class: "muted" },
         ` (${r.feature} = ${r.feature_value ?? "missing"}; ` +
         `${r.effect_text ?? `${r.contribution >= 0 ? "+" : ""}${r.contribution.toFixed(3)} ${r.scale ?? ""}`})`)))));
    box.append(card);
  }
  const rows = (obj) => Object.entries(obj).map(([k, v]) => ({ k, v }));
  const nullBecause = {};
  for (const m of c.missing || []) for (const col of m.null_columns) nullBecause[col] = `no ${m.model} model`;
  const shownScore = (r) => {
    if (r.v === null || r.v === undefined) return nullBecause[r.k] ?? "none";
    if (typeof r.v !== "number") return r.v;
    if (/_decile$/.test(r.k)) return fmt.int(r.v); // deciles are 1..10
    return fmt.num(r.v, 4);
  };
  const shownSegment = (r) => {
    if (r.v === null || r.v === undefined) return "none";
    return r.k === "rfmw_segment" ? segmentName(r.v) : r.v;
  };
  $("customer-tables").replaceChildren(
    table(rows(c.segments), [{ label: "segment", show: (r) => r.k.replace(/_/g, " ") }, { label: "value", show: shownSegment }]),
    table(rows(c.scores), [{ label: "score", show: (r) => r.k.replace(/_/g, " ") }, { label: "value", num: true, show: shownScore }]),
  );
  $("customer-result").hidden = false;
}

/** The panel of a model the run has no scores of: what is missing and what to do, instead of numbers. */
function missingCard(missing) {
  return el("article", { class: "model missing", "data-model": missing.model },
            el("h3", {}, `${missing.model} `, el("span", { class: "muted" }, "not scored in this run")),
            el("p", { class: "missing-note", "data-missing": missing.model }, missing.message));
}

/** A waterfall on the model's raw scale, where contributions add up: each bar is as long as its |contribution|.

On a probability or amount scale the same contribution moves the score by more or less depending on where it
starts, so bars drawn there do not follow the reasons' order; the conversion is said in words under the chart. */
function waterfallChart(box, m) {
  const steps = m.waterfall;
  const scale = m.scale ?? (m.model === "value" ? "log" : "log-odds");
  const W = 640, row = 26, m0 = { l: 250, r: 60, t: 8, b: 40 };
  const H = m0.t + m0.b + row * (steps.length + 2);
  const values = [0, m.base_raw, m.raw_score, ...steps.flatMap((s) => [s.raw_start, s.raw_end])];
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi === lo) hi = lo + 1e-6;
  const pad = 0.03 * (hi - lo);
  lo -= pad; hi += pad;
  const k = (W - m0.l - m0.r) / (hi - lo); // pixels per raw unit: the same for every bar
  const x = (v) => m0.l + (v - lo) * k;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${m.model} reason waterfall (${scale})` });
  const label = (i, text, max = 38) => chart.append(svg("text", { x: m0.l - 8, y: m0.t + row * i + row / 2 + 4,
                                                                  "text-anchor": "end", class: "tick" },
                                                        text.length > max ? `${text.slice(0, max - 1)}…` : text));
  const raw = (v) => `${v < 0 ? "−" : ""}${Math.abs(v).toFixed(3)}`;
  for (const t of ticks(lo, hi, 5)) {
    chart.append(svg("line", { x1: x(t), x2: x(t), y1: m0.t, y2: H - m0.b, class: "grid" }));
    chart.append(svg("text", { x: x(t), y: H - m0.b + 14, "text-anchor": "middle", class: "tick" }, fmt.num(t, 1)));
  }
  chart.append(svg("line", { x1: x(0), x2: x(0), y1: m0.t, y2: H - m0.b, class: "zero" }));
  chart.append(svg("text", { x: (m0.l + W - m0.r) / 2, y: H - 6, "text-anchor": "middle", class: "axis" },
                   `model's raw score (${scale}); contributions add up on this scale`));
  label(0, `model baseline: raw ${raw(m.base_raw)} = ${scoreText(m.model, m.base_value)}`, 44);
  const base = svg("rect", { x: x(Math.min(0, m.base_raw)), y: m0.t + 6, width: Math.max(1, Math.abs(m.base_raw) * k),
                             height: row - 12, class: "base", "data-base": m.base_raw });
  base.append(svg("title", {}, "the model's output at its average raw score over the training rows (not an average customer)"));
  chart.append(base);
  steps.forEach((s, i) => {
    const top = m0.t + row * (i + 1);
    label(i + 1, s.label);
    const a = Math.min(s.raw_start, s.raw_end);
    const bar = svg("rect", { x: x(a), y: top + 5, width: Math.max(1, Math.abs(s.contribution) * k), height: row - 10,
                              class: s.contribution >= 0 ? "up" : "down", "data-step": s.label,
                              "data-contribution": s.contribution });
    bar.append(svg("title", {}, `${s.text || s.label}: ${s.contribution >= 0 ? "+" : "−"}${Math.abs(s.contribution).toFixed(3)} ` +
                               `${scale} (running score ${scoreText(m.model, s.start)} → ${scoreText(m.model, s.end)})`));
    chart.append(bar);
    chart.append(svg("text", { x: x(Math.max(s.raw_start, s.raw_end)) + 4, y: top + row / 2 + 4, class: "tick" },
                     `${s.contribution >= 0 ? "+" : "−"}${Math.abs(s.contribution).toFixed(3)}`));
  });
  const last = steps.length + 1;
  label(last, `score: raw ${raw(m.raw_score)} = ${scoreText(m.model, m.score)}`, 44);
  chart.append(svg("rect", { x: x(Math.min(0, m.raw_score)), y: m0.t + row * last + 6,
                             width: Math.max(1, Math.abs(m.raw_score) * k), height: row - 12, class: "score" }));
  box.replaceChildren(chart);
}

// Labels of the lineage fields (GET /runs/{run_id}); other fields show their name with spaces.
const LINEAGE_LABELS = {
  run_id: "scoring run", published_attempt: "published attempt", attempts: "attempts", attempt: "attempt",
  as_of: "as of", status: "status", started_at: "started", finished_at: "finished",
  churn_version: "churn model version", response_version: "response model version", value_version: "value model version",
  customers: "customers scored", data_fingerprint: "data fingerprint", missing_models: "models missing",
  missing: "models not scored",
};

function fieldLabel(key) {
  return LINEAGE_LABELS[key] ?? key.replace(/_/g, " ");
}

/** Any JSON value as readable HTML: a definition list, a table (fields down, items across), or text. */
function readable(value) {
  if (value === null || value === undefined) return el("span", { class: "muted" }, "none");
  if (Array.isArray(value)) {
    if (!value.length) return el("span", { class: "muted" }, "none");
    if (value.every((v) => v !== null && typeof v === "object" && !Array.isArray(v))) {
      if (value.every((v) => typeof v.message === "string")) {
        return el("ul", { class: "plain" }, ...value.map((v) => el("li", {}, v.message)));
      }
      const keys = [...new Set(value.flatMap((v) => Object.keys(v)))];
      const head = el("tr", {}, el("th", {}, ""),
                      ...value.map((v, i) => el("th", {}, Number.isInteger(v.attempt) ? `attempt ${v.attempt}` : `${i + 1}`)));
      const body = keys.map((k) => el("tr", {}, el("th", { scope: "row" }, fieldLabel(k)),
                                      ...value.map((v) => el("td", {}, readable(v[k])))));
      return el("table", { class: "fields" }, el("thead", {}, head), el("tbody", {}, ...body));
    }
    return el("ul", { class: "plain" }, ...value.map((v) => el("li", {}, readable(v))));
  }
  if (typeof value === "object") {
    const dl = el("dl", { class: "fields" });
    for (const [k, v] of Object.entries(value)) dl.append(el("dt", {}, fieldLabel(k)), el("dd", {}, readable(v)));
    return dl;
  }
  if (typeof value === "boolean") return document.createTextNode(value ? "yes" : "no");
  if (typeof value === "number") {
    return document.createTextNode(Number.isInteger(value) ? fmt.int(value) : String(Number(value.toPrecision(6))));
  }
  if (/^\s*[[{]/.test(value)) { // a column that stores JSON text (e.g. btyd_params): its fields, not the text
    try {
      return readable(JSON.parse(value));
    } catch (_) { /* not JSON after all: the text */ }
  }
  return document.createTextNode(String(value));
}

async function openDocument(event, kind) {
  event.preventDefault();
  const link = event.currentTarget;
  showError("customer-error", null);
  try {
    const panel = $("doc-panel");
    closeDocument();
    $("doc-title").textContent = link.dataset.title;
    if (kind === "html") {
      const html = await api(link.dataset.url, { as: "text" });
      $("doc-frame").srcdoc = html;
      $("doc-frame").hidden = false;
      $("doc-lineage").hidden = true;
      $("doc-download").href = URL.createObjectURL(new Blob([html], { type: "text/html" }));
      $("doc-download").setAttribute("download", `${link.dataset.title.replace(/\W+/g, "-")}.html`);
    } else {
      const data = await api(link.dataset.url);
      showMissing($("doc-note"), data.missing);
      const { missing: _shownAbove, ...rest } = data;
      $("doc-lineage").replaceChildren(readable(rest));
      $("doc-lineage").hidden = false;
      $("doc-frame").hidden = true;
      const text = JSON.stringify(data, null, 2);
      $("doc-download").href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
      $("doc-download").setAttribute("download", `${link.dataset.title.replace(/\W+/g, "-")}.json`);
    }
    $("doc-title").textContent = link.dataset.title;
    panel.hidden = false;
    // open at its top (a card is long: "nearest" showed its bottom); the card's own frame starts at its top
    panel.scrollIntoView({ block: "start" });
  } catch (e) {
    showError("customer-error", e);
  }
}

async function recompute(event) {
  const button = event.currentTarget;
  const out = $("recompute-result");
  out.textContent = "recomputing from the run's model versions and feature snapshot…";
  button.disabled = true;
  try {
    const r = await api(button.dataset.url);
    out.textContent = r.verdict;
    out.className = r.mismatches === 0 ? "ok" : "error";
  } catch (e) {
    out.textContent = e.message;
    out.className = "error";
  } finally {
    button.disabled = false;
  }
}

// -- monitoring (auditor) ----------------------------------------------------------------

/** The monitored runs (latest first, alerts marked) and the report of the latest, or of the run asked for. */
async function loadMonitoring(runId = undefined) {
  showError("monitoring-error", null);
  const box = $("monitoring-runs");
  let runs;
  try {
    runs = await api("/monitoring/runs");
  } catch (e) {
    box.replaceChildren();
    showError("monitoring-error", e);
    return;
  }
  if (runs.length === 0) {
    box.replaceChildren(el("p", { class: "muted", id: "monitoring-empty" },
                           "No monitored run yet: run `propensity monitor` after a scoring run."));
    $("report-panel").hidden = true;
    return;
  }
  const chosen = runId || runs[0].run_id;
  const models = MODELS.concat(runs.flatMap((r) => r.models.map((m) => m.model)).filter((n) => !MODELS.includes(n)))
    .filter((n) => runs.some((r) => r.models.some((m) => m.model === n)));
  const head = el("tr", {}, el("th", {}, "as of"), el("th", {}, "run"),
                  ...models.map((n) => el("th", { class: "num" }, `${n} score PSI`)),
                  el("th", { class: "num" }, "features alerted"), el("th", { class: "num" }, "attribution shift (max)"),
                  el("th", {}, "status"), el("th", {}, ""));
  const rows = runs.map((r) => {
    const by = Object.fromEntries(r.models.map((m) => [m.model, m]));
    const shifts = r.models.map((m) => m.attribution_shift).filter((v) => v !== null && v !== undefined);
    const alerted = r.models.reduce((n, m) => n + (m.features_alerted || 0), 0);
    const button = el("button", { type: "button", "data-run": r.run_id }, "Report");
    button.addEventListener("click", () => loadMonitoring(r.run_id));
    const cls = [r.alert ? "alert" : "", r.run_id === chosen ? "chosen" : ""].filter(Boolean).join(" ");
    return el("tr", { class: cls, "data-run": r.run_id },
              el("td", {}, r.as_of), el("td", {}, r.run_id),
              ...models.map((n) => {
                const m = by[n];
                if (!m) return el("td", { class: "num" }, "–");
                return el("td", { class: "num", title: m.note || "" }, m.psi === null ? "–" : fmt.num(m.psi, 3),
                          m.alert ? el("span", { class: "alert-mark" }, " ⚠") : "");
              }),
              el("td", { class: "num" }, fmt.int(alerted)),
              el("td", { class: "num" }, shifts.length ? fmt.num(Math.max(...shifts), 3) : "–"),
              el("td", {}, r.alert ? el("span", { class: "alert-mark" }, "ALERT") : "ok"),
              el("td", {}, button));
  });
  box.replaceChildren(el("table", { id: "monitoring-table" }, el("thead", {}, head), el("tbody", {}, ...rows)));
  await showReport(chosen);
}

/** The run's HTML report (self-contained, no script) in the sandboxed frame, and a link to save it. */
async function showReport(runId) {
  try {
    const html = await api(`/monitoring/report?run_id=${encodeURIComponent(runId)}`, { as: "text" });
    $("report-title").textContent = `monitoring report of run ${runId}`;
    $("report-frame").srcdoc = html;
    const link = $("report-download");
    link.href = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    link.setAttribute("download", `monitoring-${runId.replace(/[^\w.-]+/g, "-")}.html`);
    $("report-panel").hidden = false;
  } catch (e) {
    showError("monitoring-error", e);
  }
}

// -- wiring ------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("login-error", null);
    try {
      await signIn($("token").value.trim());
      $("token").value = "";
    } catch (e) {
      showError("login-error", e);
    }
  });
  $("logout").addEventListener("click", signOut);
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.addEventListener("click", () => {
      showView(tab.dataset.view);
      if (tab.dataset.view === "monitoring-view") loadMonitoring();
    });
  }
  $("target-form").addEventListener("submit", buildTargets);
  $("rank-by").addEventListener("change", updateTargetForm);
  $("download").addEventListener("click", download);
  $("customer-form").addEventListener("submit", lookUp);
  $("customer-id").addEventListener("input", debounce(searchCustomers, 200));
  $("models").addEventListener("click", (event) => {
    const link = event.target.closest("a.card-link");
    if (link) openDocument({ preventDefault: () => event.preventDefault(), currentTarget: link }, "html");
  });
  $("lineage-link").addEventListener("click", (event) => openDocument(event, "json"));
  $("recompute").addEventListener("click", recompute);
  $("doc-close").addEventListener("click", closeDocument);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved).catch((e) => showError("login-error", e));
});
