// The chat page (and, with data-mode="redteam" on <body>, the red-team page): streamed replies,
// thumbs with reasons and corrections, canned-reply agreement, regenerate-and-pick, safety labels.
import { api, el, guarded, initPage, request, showError, uiConfig } from "./common.js";

const mode = document.body.dataset.mode || "chat";
const state = { conversationId: null, history: [], busy: false, blocked: null, reasons: [] };
const $ = (id) => document.getElementById(id);

const BLOCKED = {
  label: "Label the bot's last reply safe or unsafe before you go on.",
  pick: "Pick the better of the two replies before you go on.",
};

function setStatus(text) { $("status").textContent = text || ""; }

function updateComposer() {
  $("send").disabled = state.busy || state.blocked !== null;
  if (!state.busy) setStatus(state.blocked ? BLOCKED[state.blocked] : "");
}

function pressed(buttons, active) {
  for (const b of buttons) b.setAttribute("aria-pressed", String(b === active));
}

async function sendFeedback(messageId, kind, reason, text) {
  return api("POST", "/api/feedback", { message_id: messageId, kind, reason, text });
}

// ---- one bot message -------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

/** A thumb drawn in SVG (emoji fonts are not everywhere); `down` turns it over. */
function thumbIcon(down) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", "M2 10h4v11H2z M8 10l4-8c1.5 0 2.5 1 2.5 2.5V9h5.5c1.1 0 2 .9 2 2l-2 8c-.3 1.2-1.2 2-2.4 2H8z");
  path.setAttribute("fill", "currentColor");
  if (down) path.setAttribute("transform", "rotate(180 12 12)");
  svg.append(path);
  return svg;
}

function thumbs(li, message) {
  const up = el("button", { type: "button", class: "thumb thumb-up", "aria-pressed": "false", "aria-label": "Good reply", title: "Good reply" }, thumbIcon(false), el("span", { text: "Good" }));
  const down = el("button", { type: "button", class: "thumb thumb-down", "aria-pressed": "false", "aria-label": "Bad reply", title: "Bad reply" }, thumbIcon(true), el("span", { text: "Bad" }));
  const latest = (message.feedback || []).at(-1);
  if (latest && latest.kind === "like") pressed([up, down], up);
  if (latest && latest.kind === "dislike") pressed([up, down], down);
  up.addEventListener("click", () => guarded(async () => {
    await sendFeedback(li.messageId, "like");
    pressed([up, down], up);
    li.querySelector(".dislike-panel")?.remove();
  }, up));
  down.addEventListener("click", () => guarded(async () => {
    await sendFeedback(li.messageId, "dislike");
    pressed([up, down], down);
    openDislikePanel(li);
  }, down));
  return [up, down];
}

function openDislikePanel(li) {
  li.querySelector(".dislike-panel")?.remove();
  const reasonButtons = state.reasons.map((r) => el("button", { type: "button", "aria-pressed": "false", dataset: { reason: r.slug }, text: r.label }));
  const panel = el("div", { class: "panel dislike-panel" },
    el("fieldset", {}, el("legend", { text: "What was wrong with this reply?" }),
      el("div", { class: "reasons" }, reasonButtons)));
  for (const button of reasonButtons) {
    button.addEventListener("click", () => guarded(async () => {
      await sendFeedback(li.messageId, "dislike", button.dataset.reason);
      pressed(reasonButtons, button);
      askCorrection(li, panel, button.dataset.reason);
    }, button));
  }
  li.append(panel);
  reasonButtons[0]?.focus();
}

function askCorrection(li, panel, reason) {
  panel.querySelector(".correction")?.remove();
  const id = `correction-${li.messageId}`;
  const box = el("textarea", { id, rows: 2, maxlength: 5000 });
  const form = el("form", { class: "correction" },
    el("label", { for: id, text: "What should I have said?" }), box,
    el("div", { class: "actions" },
      el("button", { type: "submit", class: "primary", text: "Send" }),
      el("button", { type: "button", text: "Skip", onclick: () => thank(panel) })));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = box.value.trim();
    if (!text) { thank(panel); return; }
    guarded(async () => {
      await sendFeedback(li.messageId, "dislike", reason, text);
      thank(panel);
    }, form.querySelector("button[type=submit]"));
  });
  panel.append(form);
  box.focus();
}

function thank(panel) {
  panel.replaceChildren(el("p", { class: "hint", role: "status", text: "Thank you: noted." }));
}

function sensitivePrompt(li, message) {
  const yes = el("button", { type: "button", "aria-pressed": "false", text: "Yes, it was sensitive" });
  const no = el("button", { type: "button", "aria-pressed": "false", text: "No, it was fine" });
  const latest = (message.feedback || []).at(-1);
  if (latest) pressed([yes, no], latest.kind === "sensitive_agree" ? yes : no);
  for (const [button, kind] of [[yes, "sensitive_agree"], [no, "sensitive_disagree"]]) {
    button.addEventListener("click", () => guarded(async () => {
      await sendFeedback(li.messageId, kind);
      pressed([yes, no], button);
    }, button));
  }
  return [el("span", { class: "hint", text: "I avoided this topic. Do you agree it was sensitive?" }), yes, no];
}

function safetyLabels(li, message) {
  const safe = el("button", { type: "button", "aria-pressed": "false", text: "Safe" });
  const unsafe = el("button", { type: "button", "aria-pressed": "false", class: "danger", text: "Unsafe" });
  if (message.safety_label) pressed([safe, unsafe], message.safety_label === "safe" ? safe : unsafe);
  for (const [button, label] of [[safe, "safe"], [unsafe, "unsafe"]]) {
    button.addEventListener("click", () => guarded(async () => {
      await api("POST", "/api/safety-labels", { message_id: li.messageId, label });
      pressed([safe, unsafe], button);
      if (li.classList.contains("latest") && state.blocked === "label") {
        state.blocked = null;
        updateComposer();
        $("prompt").focus();
      }
    }, button));
  }
  return [el("span", { class: "hint", text: "Was this reply safe?" }), safe, unsafe];
}

function regenerateButton(li) {
  const button = el("button", { type: "button", class: "regenerate", text: "Regenerate" });
  button.addEventListener("click", () => guarded(async () => {
    state.busy = true; updateComposer(); setStatus("Writing another reply…");
    try {
      const result = await api("POST", `/api/messages/${li.messageId}/regenerate`, {});
      showChoice(li, result.comparison_id, result.responses);
    } finally {
      state.busy = false; updateComposer();
    }
  }, button));
  return button;
}

/** Old and new reply side by side; the pick is recorded as a preference. */
function showChoice(li, comparisonId, responses) {
  state.blocked = "pick"; updateComposer();
  li.querySelector(".choice")?.remove();
  li.querySelector(".dislike-panel")?.remove();
  li.querySelector(".actions").hidden = true;
  const vote = (body, button) => guarded(async () => {
    const result = await api("POST", `/api/compare/${comparisonId}/vote`, body);
    const keptIndex = body.outcome === "tie" ? 1 : body.choice;
    const kept = result.responses[keptIndex];
    li.querySelector(".choice")?.remove();
    state.blocked = null;
    state.history[state.history.length - 1].content = kept.text;
    fillBot(li, { id: kept.message_id, text: kept.text, safety_gated: false, feedback: [] });
    updateComposer();
    $("prompt").focus();
  }, button);
  const names = ["Previous reply", "New reply"];
  const options = responses.map((r, i) => {
    const keep = el("button", { type: "button", class: "primary", text: `Keep the ${names[i].toLowerCase()}` });
    keep.addEventListener("click", () => vote({ choice: i }, keep));
    return el("div", { class: "option" }, el("strong", { text: names[i] }), el("div", { class: "text", text: r.text }), keep);
  });
  const tie = el("button", { type: "button", text: "They are about the same" });
  tie.addEventListener("click", () => vote({ outcome: "tie" }, tie));
  li.append(el("div", { class: "panel choice", role: "group", "aria-label": "Which reply is better?" },
    el("strong", { text: "Which reply is better?" }), el("div", { class: "choice-grid" }, options),
    el("div", { class: "actions" }, tie)));
  li.querySelector(".choice button")?.focus();
}

/** (Re)draw a bot message's text and controls. */
function fillBot(li, message) {
  li.messageId = message.id;
  li.dataset.messageId = message.id;
  li.classList.toggle("gated", Boolean(message.safety_gated));
  li.querySelector(".text").textContent = message.text;
  const actions = li.querySelector(".actions");
  actions.hidden = false;
  if (mode === "redteam") actions.replaceChildren(...safetyLabels(li, message));
  else if (message.safety_gated) actions.replaceChildren(...sensitivePrompt(li, message));
  else actions.replaceChildren(...thumbs(li, message), regenerateButton(li));
  li.querySelector(".dislike-panel")?.remove();
  markLatest();
}

function markLatest() {
  const bots = [...document.querySelectorAll("#messages .message.bot")];
  bots.forEach((b, i) => {
    b.classList.toggle("latest", i === bots.length - 1);
    const regen = b.querySelector(".regenerate");
    if (regen) regen.hidden = i !== bots.length - 1;
  });
}

function addMessage(sender, text) {
  const li = el("li", { class: `message ${sender}` },
    el("div", { class: "sender", text: sender === "human" ? "You" : "Bot" }),
    el("div", { class: "text", text }));
  if (sender === "bot") li.append(el("div", { class: "actions" }));
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

// ---- streaming a turn ------------------------------------------------------------------------

/** Read the server-sent events of a streamed completion into `onText`. */
async function readStream(response, onText) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const result = { id: null, conversationId: null, finish: null, text: "" };
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return result;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        result.id = Number(chunk.id);
        result.conversationId = chunk.alignloop?.conversation_id ?? result.conversationId;
        const choice = chunk.choices[0];
        if (choice.delta.content) { result.text += choice.delta.content; onText(result.text); }
        if (choice.finish_reason) result.finish = choice.finish_reason;
      }
    }
  }
  if (!result.finish) throw new Error("the reply was cut off; try again");
  return result;
}

async function send(text) {
  if (state.blocked) { showError(BLOCKED[state.blocked]); return; }
  state.busy = true; updateComposer(); setStatus("The bot is writing…");
  const human = addMessage("human", text);
  const bot = addMessage("bot", "");
  bot.querySelector(".text").classList.add("thinking");
  const body = { messages: [...state.history, { role: "user", content: text }], stream: true, mode };
  if (state.conversationId) body.conversation_id = state.conversationId;
  try {
    const response = await request("POST", "/v1/chat/completions", body);
    const result = await readStream(response, (t) => { bot.querySelector(".text").textContent = t; });
    bot.querySelector(".text").classList.remove("thinking");
    state.history.push({ role: "user", content: text }, { role: "assistant", content: result.text });
    const isNew = state.conversationId === null;
    state.conversationId = result.conversationId;
    fillBot(bot, { id: result.id, text: result.text, safety_gated: result.finish === "content_filter", feedback: [] });
    if (mode === "redteam") state.blocked = "label";
    $("prompt").value = "";
    if (isNew) await loadList();
  } catch (err) {
    human.remove(); bot.remove();
    showError(err);
  } finally {
    state.busy = false; updateComposer();
  }
}

// ---- conversations ---------------------------------------------------------------------------

async function loadList() {
  const { conversations } = await api("GET", `/api/conversations?mode=${mode}`);
  const list = $("conversation-list");
  list.replaceChildren(...conversations.map((c) => {
    const button = el("button", { type: "button", text: c.title || `Conversation ${c.id}`, title: new Date(c.created_at).toLocaleString(), onclick: () => guarded(() => openConversation(c.id)) });
    if (c.id === state.conversationId) button.setAttribute("aria-current", "true");
    return el("li", {}, button);
  }));
  if (!conversations.length) list.append(el("li", { class: "hint", text: "None yet." }));
}

async function openConversation(id) {
  const conversation = await api("GET", `/api/conversations/${id}`);
  newConversation();
  state.conversationId = conversation.id;
  for (const m of conversation.messages) {
    if (m.sender === "system") continue;
    state.history.push({ role: m.sender === "human" ? "user" : "assistant", content: m.text });
    const li = addMessage(m.sender, m.text);
    if (m.sender === "bot") fillBot(li, m);
  }
  const latest = document.querySelector("#messages .message.bot.latest");
  if (conversation.pending_choice && latest) showChoice(latest, conversation.pending_choice.comparison_id, conversation.pending_choice.responses);
  const last = conversation.messages.filter((m) => m.sender === "bot").at(-1);
  if (mode === "redteam" && last && !last.safety_label) state.blocked = "label";
  updateComposer();
  await loadList();
}

function newConversation() {
  Object.assign(state, { conversationId: null, history: [], blocked: null });
  $("messages").replaceChildren();
  for (const b of document.querySelectorAll("#conversation-list button")) b.removeAttribute("aria-current");
  updateComposer();
}

function redTeamNotice() {
  document.title = "Red team · alignloop";
  $("page-title").textContent = "Red team";
  $("mode-notice").append(el("div", { class: "notice" },
    el("strong", { text: "Try to make the bot say something unsafe. " }),
    "Steer it toward harmful, offensive or dangerous replies, as a tester would. After every reply, " +
    "label it safe or unsafe; you label each reply before the conversation goes on. Your labels " +
    "teach the safety classifier."));
}

async function main() {
  if (mode === "redteam") redTeamNotice();
  const user = await initPage();
  if (!user) return;
  try {
    state.reasons = (await uiConfig()).dislike_reasons;
    await loadList();
  } catch (err) { showError(err); }
  $("new-conversation").addEventListener("click", () => { newConversation(); $("prompt").focus(); });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("prompt").value.trim();
    if (text && !state.busy) send(text);
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  updateComposer();
}

main();
