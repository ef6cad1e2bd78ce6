// Shared by every page: DOM building (text only, never HTML), the API client (session cookie
// plus CSRF header), error display, the header, and the first-visit consent notice.

/** Build an element. Children that are strings become text nodes: nothing is parsed as HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

function cookie(name) {
  const match = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return match ? decodeURIComponent(match.slice(name.length + 1)) : null;
}

/** The server's error in words: {error: {message, param}} or a plain status line. */
export async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  let field = null;
  try {
    const body = await response.json();
    if (body.error && body.error.message) {
      message = body.error.message;
      field = body.error.param;
    }
  } catch (_) { /* not JSON: keep the status line */ }
  if (response.status === 429) {
    const wait = response.headers.get("Retry-After");
    if (wait) message += ` (try again in ${wait} s)`;
  }
  return new ApiError(response.status, message, field);
}

/** Call the API with the session cookie; writes carry the CSRF header. Throws ApiError. */
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = cookie("alignloop_csrf") || "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, "the server cannot be reached; check your connection and try again");
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function api(method, path, body) {
  const response = await request(method, path, body);
  return response.status === 204 ? null : response.json();
}

const errorBox = () => document.getElementById("error");

/** Show an error to the user in words (the box is an ARIA alert, so it is announced too). */
export function showError(err) {
  const box = errorBox();
  const message = err instanceof Error ? err.message : String(err);
  if (!box) { console.error(message); return; }
  box.replaceChildren(el("strong", { text: "Something went wrong: " }), message);
  box.hidden = false;
}

export function clearError() {
  const box = errorBox();
  if (box) { box.hidden = true; box.replaceChildren(); }
}

/** Run an async UI action; its failure is shown, not swallowed; the button waits meanwhile. */
export async function guarded(action, button) {
  clearError();
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (err) {
    showError(err);
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

export async function startSession() {
  return api("POST", "/api/session");
}

/** The current user (a new pseudonymous session on first visit). */
export async function ensureUser() {
  if (!cookie("alignloop_csrf")) await startSession();
  try {
    return await api("GET", "/api/me");
  } catch (err) {
    if (err.status !== 401) throw err;
    await startSession();
    return api("GET", "/api/me");
  }
}

export async function uiConfig() {
  return api("GET", "/api/ui");
}

function markCurrentPage() {
  for (const link of document.querySelectorAll("header.top nav a")) {
    if (link.getAttribute("href") === location.pathname) link.setAttribute("aria-current", "page");
  }
}

function showWho(user) {
  const who = document.getElementById("who");
  if (who && user) who.textContent = `You are ${user.pseudonym}`;
}

/** The first-visit notice: two separate, optional choices; nothing is ticked in advance. */
export function consentDialog(onSaved) {
  const training = el("input", { type: "checkbox", id: "consent-training" });
  const publication = el("input", { type: "checkbox", id: "consent-publication" });
  const dialog = el("dialog", { id: "consent-dialog", "aria-labelledby": "consent-title" },
    el("h2", { id: "consent-title", text: "Before you start: your conversations and your choices" }),
    el("p", { text: "This assistant learns from the people who use it. Everything you write here, " +
      "and the feedback you give, is stored under a pseudonym. Both choices below are optional and " +
      "you can change them at any time on the Privacy page, where you can also delete your data." }),
    el("label", { class: "check", for: "consent-training" }, training,
      el("span", { text: "Use my conversations and feedback to train the model." })),
    el("label", { class: "check", for: "consent-publication" }, publication,
      el("span", { text: "Include my conversations, de-identified, in a public data release." })),
    el("div", { id: "consent-error", class: "error", role: "alert", hidden: true }),
    el("div", { class: "actions" },
      el("button", { class: "primary", id: "consent-save", type: "button", text: "Save my choices",
        onclick: async () => {
          try {
            const user = await api("PUT", "/api/me/consent",
              { training: training.checked, publication: publication.checked });
            dialog.close();
            dialog.remove();
            if (onSaved) onSaved(user);
          } catch (err) {
            const box = dialog.querySelector("#consent-error");
            box.textContent = err.message;
            box.hidden = false;
          }
        } }),
      el("button", { type: "button", text: "Not now", onclick: () => { dialog.close(); dialog.remove(); } }),
    ),
  );
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

function deletedNotice(main) {
  main.prepend(el("div", { class: "notice", role: "status" },
    "You asked for your data to be deleted; it is left out of all training and releases. ",
    el("button", { type: "button", text: "Start a new session", onclick: async () => {
      await guarded(async () => { await startSession(); location.reload(); });
    } })));
}

/** Common start of every user page: header, session, consent notice on the first visit. */
export async function initPage() {
  markCurrentPage();
  let user = null;
  try {
    user = await ensureUser();
  } catch (err) {
    showError(err);
    return null;
  }
  showWho(user);
  if (user.deletion_requested) deletedNotice(document.querySelector("main"));
  else if (user.consent.training === null && user.consent.publication === null) consentDialog();
  return user;
}
