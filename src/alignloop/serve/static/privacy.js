// Consent (training, publication: separate and optional), changeable; "delete my data".
import { api, el, guarded, initPage, startSession } from "./common.js";

const $ = (id) => document.getElementById(id);

// The controls start disabled in the page and are enabled here, once the user is known and the
// handlers below are attached: a click before that would otherwise do nothing.
function show(user) {
  $("training").checked = user.consent.training === true;
  $("publication").checked = user.consent.publication === true;
  for (const id of ["training", "publication", "save-consent", "delete"]) $(id).disabled = Boolean(user.deletion_requested);
}

function describe(user) {
  const yes = (v) => (v ? "yes" : "no");
  return `Saved. Training: ${yes(user.consent.training)}; public release: ${yes(user.consent.publication)}.`;
}

async function main() {
  const user = await initPage();
  if (!user) return;
  $("consent-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const saved = await api("PUT", "/api/me/consent", { training: $("training").checked, publication: $("publication").checked });
      show(saved);
      $("status").textContent = describe(saved);
    }, $("save-consent"));
  });
  $("delete").addEventListener("click", () => { $("delete-confirm").hidden = false; $("delete-yes").focus(); });
  $("delete-no").addEventListener("click", () => { $("delete-confirm").hidden = true; $("delete").focus(); });
  $("delete-yes").addEventListener("click", () => guarded(async () => {
    const after = await api("POST", "/api/me/deletion");
    show(after);
    $("delete-confirm").replaceChildren(
      el("p", { role: "status", text: "Your deletion request is recorded: your conversations are left out of every later export, training set and release." }),
      el("button", { type: "button", text: "Start a new session", onclick: () => guarded(async () => { await startSession(); location.reload(); }) }));
  }, $("delete-yes")));
  show(user);
}

main();
