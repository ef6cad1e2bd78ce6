// The operator's dashboard: totals, plots drawn by the server (SVG), troll scores, model
// versions and a filterable conversation browser. Needs the admin token.
import { api, clearError, el, guarded, showError } from "./common.js";

const $ = (id) => document.getElementById(id);
const PAGE = 25;
let offset = 0;

function table(headers, rows, empty) {
  if (!rows.length) return el("p", { class: "status", text: empty });
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => (c instanceof Node ? el("td", {}, c) : el("td", { text: String(c ?? "") })))))));
}

const day = (iso) => iso.slice(0, 10);
const metricsText = (m) => Object.entries(m).map(([k, v]) => `${k} = ${typeof v === "number" ? Number(v.toFixed(4)) : JSON.stringify(v)}`).join("; ") || "no evaluation yet";

function drawSummary(summary, days) {
  $("totals").replaceChildren(...Object.entries(summary.totals).map(([name, n]) =>
    el("div", {}, el("dt", { text: name }), el("dd", { text: String(n) }))));
  const plots = [
    ["messages", "Conversations, human and bot messages per day"],
    ["feedback", "Likes, dislikes and votes per day"],
    ["reasons", "Dislikes by reason per day"],
    ["safety", "Canned safety replies and red-team labels per day"],
  ];
  $("plots").replaceChildren(
    ...plots.map(([kind, alt]) => el("img", { src: `/api/admin/plots/activity.svg?kind=${kind}&days=${days}`, alt, width: 720, height: 300 })),
    el("img", { src: `/api/admin/plots/reasons.svg?ts=${Date.now()}`, alt: "Dislikes by reason: " + Object.entries(summary.dislike_reasons).map(([r, n]) => `${r} ${n}`).join(", "), width: 720 }));
  $("trolls").replaceChildren(table(["User", "Troll score", "Acts judged", "Signals", "Curation run", "Computed"],
    summary.troll_scores.map((t) => [userFilterButton(t.pseudonym), t.troll_score, t.n_labels, signalsText(t.signals), t.run_id ?? t.method, day(t.computed_at)]),
    "No trust scores yet: curation computes them from the users' labels."));
  $("models").replaceChildren(table(["Id", "Name", "Base", "Parent", "Created", "Evaluation"],
    summary.model_versions.map((v) => [v.id, v.name, v.base, v.parent_id, day(v.created_at), metricsText(v.metrics)]),
    "No model versions yet."));
}

function signalsText(signals) {
  return Object.entries(signals || {}).map(([name, v]) => `${name.replaceAll("_", " ")} ${v}`).join(", ");
}

function userFilterButton(pseudonym) {
  return el("button", { type: "button", text: pseudonym, onclick: () => { $("f-user").value = pseudonym; offset = 0; browse(); } });
}

function filters() {
  const params = new URLSearchParams({ limit: PAGE, offset });
  for (const [key, id] of [["feedback", "f-feedback"], ["reason", "f-reason"], ["user", "f-user"], ["mode", "f-mode"]]) {
    const value = $(id).value.trim();
    if (value) params.set(key, value);
  }
  return params;
}

async function browse() {
  await guarded(async () => {
    const page = await api("GET", `/api/admin/conversations?${filters()}`);
    const last = Math.min(offset + page.conversations.length, page.total);
    $("browse-count").textContent = page.total ? `Showing ${offset + 1}–${last} of ${page.total} conversations.` : "No conversation matches these filters.";
    $("conversations").replaceChildren(table(["Id", "User", "Mode", "Started", "Messages", "Likes", "Dislikes", "First message", ""],
      page.conversations.map((c) => [c.id, userFilterButton(c.user), c.mode, day(c.created_at), c.messages, c.likes, c.dislikes,
        el("span", { class: "snippet", text: c.first_message }),
        el("button", { type: "button", text: "Open", "aria-label": `Open conversation ${c.id}`, onclick: () => openDetail(c.id) })]),
      ""));
    $("prev").disabled = offset === 0;
    $("next").disabled = last >= page.total;
  });
}

async function openDetail(id) {
  await guarded(async () => {
    const c = await api("GET", `/api/admin/conversations/${id}`);
    const rows = c.messages.map((m) => {
      const feedback = m.feedback.map((f) => [f.kind, f.reason, f.text].filter(Boolean).join(": ")).join(" | ");
      const labels = m.safety_labels.map((s) => `${s.label} (${s.by}${s.score != null ? " " + s.score.toFixed(2) : ""})`).join(", ");
      const text = el("span", { class: m.superseded_by_id ? "superseded" : "", text: m.text });
      return [m.position, m.sender + (m.safety_gated ? " (canned)" : ""), text, feedback, labels];
    });
    $("detail").hidden = false;
    $("detail").replaceChildren(
      el("h2", { tabindex: "-1", id: "detail-title", text: `Conversation ${c.id} · ${c.mode} · user ${c.user}` }),
      el("div", { class: "table-wrap" }, table(["#", "Sender", "Text", "Feedback", "Safety labels"], rows, "No messages.")));
    $("detail-title").focus();
  });
}

function loopStatusText(loop) {
  if (!loop.configured) return "Rounds are off: start the server with loop_config (a loop YAML file) to run them from here.";
  if (loop.running) return `A round is running (process ${loop.last.pid}); chat goes on meanwhile. Log: ${loop.last.log}`;
  if (loop.last) return `The last round started here ended with exit code ${loop.last.returncode}. Log: ${loop.last.log}`;
  return "No round started from this page yet.";
}

async function loadLoop() {
  const loop = await api("GET", "/api/admin/loop");
  $("loop-status").textContent = loopStatusText(loop);
  $("start-round").disabled = !loop.configured || loop.running;
  $("rounds").replaceChildren(table(["Arm", "Round", "Status", "Candidate", "Deployed", "Win rate", "Promoted", "Why"],
    loop.rounds.map((r) => [r.arm, r.number, r.status, r.candidate, r.deployed ?? "base",
      r.win_rate == null ? "" : `${r.win_rate.toFixed(3)} (low ${r.win_rate_low.toFixed(3)})`,
      r.promoted ? "yes" : "no", r.reasons.join("; ")]),
    "No loop rounds yet."));
  if (loop.running) setTimeout(() => guarded(loadLoop), 5000);
}

async function loadDashboard() {
  const days = $("days").value;
  const summary = await api("GET", `/api/admin/summary?days=${days}`);
  $("login").hidden = true;
  $("dashboard").hidden = false;
  drawSummary(summary, days);
  await loadLoop();
  await browse();
}

async function main() {
  const reasons = (await api("GET", "/api/ui").catch(() => ({ dislike_reasons: [] }))).dislike_reasons;
  $("f-reason").append(...reasons.map((r) => el("option", { value: r.slug, text: r.label })));
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      await api("POST", "/api/admin/session", { token: $("admin-token").value });
      $("admin-token").value = "";
      await loadDashboard();
    }, event.submitter);
  });
  $("logout").addEventListener("click", () => guarded(async () => {
    await api("DELETE", "/api/admin/session");
    location.reload();
  }));
  $("days").addEventListener("change", () => guarded(loadDashboard));
  $("start-round").addEventListener("click", (event) => guarded(async () => {
    await api("POST", "/api/admin/loop/rounds");
    await loadLoop();
  }, event.currentTarget));
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); offset = 0; browse(); });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); browse(); });
  $("next").addEventListener("click", () => { offset += PAGE; browse(); });
  try {
    await loadDashboard();
  } catch (err) {
    $("login").hidden = false;
    if (err.status === 401) clearError();
    else showError(err);
    $("admin-token").focus();
  }
}

main();
