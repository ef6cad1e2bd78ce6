// Side-by-side compare: one prompt, K anonymous replies; a pick, a tie, both bad, or a ranking.
// Which model wrote which is shown only once the vote is recorded.
import { api, el, guarded, initPage, showError, uiConfig } from "./common.js";

const $ = (id) => document.getElementById(id);
const letter = (i) => String.fromCharCode(65 + i);

function drawResponses(responses) {
  $("responses").replaceChildren(...responses.map((r, i) =>
    el("article", { class: "response", dataset: { index: i }, "aria-labelledby": `reply-${i}` },
      el("h2", { id: `reply-${i}`, text: `Reply ${letter(i)}` }),
      el("div", { class: "text", text: r.text }),
      el("div", { class: "model" }))));
}

function reveal(result) {
  for (const r of result.responses) {
    const card = document.querySelector(`.response[data-index="${r.index}"]`);
    card.querySelector(".model").textContent = `Written by: ${r.model || "unknown model"}`;
  }
  const chosen = result.outcome === "choice" ? [result.choice] : result.outcome === "ranking" ? [result.ranking[0]] : [];
  for (const i of chosen) document.querySelector(`.response[data-index="${i}"]`).classList.add("chosen");
  const words = {
    choice: `You preferred reply ${letter(result.choice ?? 0)}.`,
    tie: "You called it a tie.",
    both_bad: "You judged all replies bad.",
    ranking: `Your ranking: ${(result.ranking || []).map(letter).join(" > ")}.`,
  };
  $("vote").replaceChildren(el("p", { class: "notice", role: "status", text: `Vote recorded. ${words[result.outcome]} ` +
    "The model behind each reply is now shown." }));
}

function voteControls(comparisonId, k) {
  const submit = (body, button) => guarded(async () => {
    reveal(await api("POST", `/api/compare/${comparisonId}/vote`, body));
  }, button);
  const bothBad = el("button", { type: "button", text: k === 2 ? "Both are bad" : "All are bad" });
  bothBad.addEventListener("click", () => submit({ outcome: "both_bad" }, bothBad));
  const tie = el("button", { type: "button", text: "Tie" });
  tie.addEventListener("click", () => submit({ outcome: "tie" }, tie));
  if (k === 2) {
    const picks = [0, 1].map((i) => {
      const b = el("button", { type: "button", class: "primary", text: `${letter(i)} is better` });
      b.addEventListener("click", () => submit({ choice: i }, b));
      return b;
    });
    return el("div", { class: "vote", role: "group", "aria-label": "Your vote" }, picks, tie, bothBad);
  }
  // K > 2: rank every reply (1 = best), each rank used once.
  const selects = Array.from({ length: k }, (_, i) => el("select", { id: `rank-${i}` },
    Array.from({ length: k }, (_, r) => el("option", { value: r + 1, text: String(r + 1), selected: r === i }))));
  const rankButton = el("button", { type: "submit", class: "primary", text: "Submit ranking" });
  const form = el("form", { class: "card" },
    el("p", { text: "Rank the replies: 1 is the best. Use each rank once." }),
    el("div", { class: "row" }, selects.map((s, i) => el("div", {}, el("label", { for: s.id, text: `Rank of reply ${letter(i)}` }), s))),
    el("div", { class: "vote" }, rankButton, tie, bothBad));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const ranks = selects.map((s) => Number(s.value));
    if (new Set(ranks).size !== k) { showError("give each reply a different rank"); return; }
    const ranking = ranks.map((rank, i) => [rank, i]).sort((a, b) => a[0] - b[0]).map(([, i]) => i);
    submit({ ranking }, rankButton);
  });
  return form;
}

async function main() {
  if (!(await initPage())) return;
  try {
    const config = await uiConfig();
    $("compare-k").replaceChildren(...Array.from({ length: config.max_compare_k - 1 }, (_, i) =>
      el("option", { value: i + 2, text: String(i + 2) })));
  } catch (err) { showError(err); }
  $("compare-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const prompt = $("compare-prompt").value.trim();
    if (!prompt) return;
    const k = Number($("compare-k").value || 2);
    guarded(async () => {
      $("status").textContent = "Writing the replies…";
      $("responses").replaceChildren(); $("vote").replaceChildren();
      try {
        const result = await api("POST", "/api/compare", { prompt, k });
        drawResponses(result.responses);
        $("vote").append(voteControls(result.comparison_id, result.responses.length));
        $("vote").querySelector("button")?.focus();
      } finally { $("status").textContent = ""; }
    }, $("compare-submit"));
  });
}

main();
