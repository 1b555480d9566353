// The demo storefront: everything goes through the BFF with the session cookie and the X-CSRF header.
import { BFF_URL } from "/config.js";

const $ = (id) => document.getElementById(id);

async function bff(path, options = {}) {
  return fetch(BFF_URL + path, {
    credentials: "include",
    ...options,
    headers: { "X-CSRF": "1", ...(options.headers || {}) },
  });
}

async function showSession() {
  const res = await bff("/auth/session");
  const body = await res.json();
  $("status").textContent = "";
  if (!body.authenticated) {
    $("signed-out").hidden = false;
    return;
  }
  $("signed-in").hidden = false;
  $("who").textContent = body.customer.email || body.customer.sub;
  $("profile").textContent = `Signed in as ${body.customer.email}`;
}

$("sign-in").addEventListener("click", () => {
  const params = new URLSearchParams({ return_to: location.href.split("?")[0], locale: $("locale").value });
  location.assign(`${BFF_URL}/auth/login?${params}`);
});
$("sign-out-form").action = `${BFF_URL}/auth/logout`;

showSession().catch(() => { $("status").textContent = "Could not reach the BFF."; });
