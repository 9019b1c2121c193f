// Sign in: the four values the API's headers carry, checked against the API before they are
// kept (in session storage only). A refusal shows the API's own message and keeps the form.
import { ApiError, get, rolePermissions, saveSession } from "../api.js";
import { errorBox, h, replace } from "../dom.js";

function field(label, input, hint) {
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hint && h("p", { class: "hint" }, hint));
}

export async function renderSignIn(main, { done }) {
  const secret = h("input", { id: "signin-secret", type: "password", required: true, autocomplete: "off" });
  const tenant = h("input", { id: "signin-tenant", required: true, pattern: "[A-Za-z0-9_-]{1,128}", autocomplete: "off" });
  const user = h("input", { id: "signin-user", required: true, pattern: "[A-Za-z0-9_-]{1,128}", autocomplete: "off" });
  const role = h("select", { id: "signin-role", required: true });
  const message = h("div", { class: "form-message", "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "btn btn-primary" }, "Sign in");
  const form = h(
    "form",
    { class: "card signin", novalidate: true },
    h("h1", null, "Sign in to AVA"),
    h("p", { class: "muted" }, "Your values stay in this browser tab only and are sent to the API as its headers."),
    field("Internal secret", secret),
    field("Tenant", tenant, "1-128 characters: letters, digits, _ and -"),
    field("User", user),
    field("Role", role),
    message,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const who = { secret: secret.value, tenant: tenant.value.trim(), user: user.value.trim(), role: role.value };
    button.disabled = true;
    replace(message);
    try {
      await get("/workers", { query: { per_page: 1 }, who });
      saveSession(who);
      done();
    } catch (error) {
      replace(message, errorBox(error instanceof ApiError ? error : new Error(`cannot reach the platform: ${error.message}`)));
      button.disabled = false;
    }
  });
  replace(main, h("div", { class: "center" }, form));
  const roles = await rolePermissions();
  replace(role, Object.keys(roles).map((name) => h("option", { value: name }, name)));
  role.value = "tenant-admin" in roles ? "tenant-admin" : role.value;
  secret.focus();
}
