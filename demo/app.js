// The demo storefront: a signed-in customer's profile, orders, default address and devices, all through the
// BFF, and a cart made with the Storefront API's public token, as any storefront makes one.
// No customer token ever reaches this page: the BFF holds them, and the browser only carries its HttpOnly session
// cookie. Checkout goes through the BFF, which puts the signed-in customer on the cart server-side.
// Every piece of data goes into the DOM as text (textContent / Text nodes), never as HTML.
import { BFF_URL, STOREFRONT_TOKEN, STOREFRONT_URL } from "/config.js";

const $ = (id) => document.getElementById(id);
const LOCALE_KEY = "demo.locale";
const SIGNED_OUT_KEY = "demo.signedOut";
const CART_KEY = "demo.cartId";

// What a failed sign-in (`?login_error=<code>`, from /auth/login or /auth/callback) tells the customer.
// `retry: false` only where trying again cannot help until someone fixes the shop's setup.
const OUR_SIDE = "Sign-in isn't working on our side right now. It's not something you did;";
const ourSide = (when) => ({ text: `${OUR_SIDE} please try again ${when}.`, ourSide: true });
const yourSide = (text) => ({ text: `${text} Please try again.` });
const LOGIN_ERRORS = {
  // Something about this attempt: a new one is the way forward.
  access_denied: yourSide("Sign-in was cancelled."),
  login_required: yourSide("You're not signed in at the shop."),
  interaction_required: yourSide("The shop needs you to sign in on its page."),
  consent_required: yourSide("The shop needs your consent before signing you in here."),
  account_selection_required: yourSide("The shop needs you to choose an account."),
  invalid_state: yourSide("That sign-in link was already used or has expired."),
  state_mismatch: yourSide("The sign-in was started in another browser or tab."),
  code_rejected: yourSide("The shop rejected the sign-in; it may have taken too long."),
  invalid_request: yourSide("The sign-in came back incomplete."),
  invalid_return_to: yourSide("The link you followed can't bring you back to this page."),
  authorization_failed: yourSide("The shop couldn't complete the sign-in."),
  rate_limited: { text: "Too many sign-in attempts from your network. Please wait a minute, then try again." },
  // Our side: the shop, the account service or their setup.
  invalid_client: { ...ourSide("later"), retry: false }, // the BFF's credentials: retrying can't fix them
  invalid_id_token: ourSide("in a few minutes"),
  token_endpoint_error: ourSide("in a few minutes"),
  token_endpoint_unavailable: ourSide("in a few minutes"),
  token_endpoint_throttled: ourSide("in a few minutes"),
  token_endpoint_timeout: ourSide("in a few minutes"),
  discovery_failed: ourSide("in a few minutes"),
  discovery_timeout: ourSide("in a few minutes"),
  session_store_unavailable: ourSide("in a few minutes"),
  login_capacity: ourSide("in a few minutes"),
  upstream_unavailable: ourSide("in a few minutes"),
  upstream_timeout: ourSide("in a few minutes"),
  internal_error: ourSide("later"),
};
const UNKNOWN_LOGIN_ERROR = { text: "Something went wrong while signing you in. Please try again." };

class SessionEnded extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
}

class ServiceError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

// --- Talking to the BFF ---------------------------------------------------------------------------

function bff(path, options = {}) {
  return fetch(BFF_URL + path, {
    credentials: "include",
    ...options,
    headers: { "X-CSRF": "1", "Content-Type": "application/json", ...options.headers },
  });
}

const documents = new Map();

// The .graphql files are sent exactly as stored (an allowlist may hash them), so they are never edited here.
function storedDocument(path) {
  if (!documents.has(path)) {
    const text = fetch(path).then((res) => {
      if (!res.ok) throw new ServiceError(`Could not load ${path} (HTTP ${res.status}).`);
      return res.text();
    });
    text.catch(() => documents.delete(path));
    documents.set(path, text);
  }
  return documents.get(path);
}

const graphqlDocument = (name) => storedDocument(`/graphql/${name}.graphql`);

// A BFF call's JSON body; a 401 is SessionEnded, any other failure a ServiceError carrying the BFF's error code.
async function bffJson(path, options) {
  const res = await bff(path, options);
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) throw new SessionEnded(body.error || "not_authenticated");
  if (!res.ok) {
    const reason = body.detail || `The account service answered HTTP ${res.status}.`;
    throw new ServiceError(`${reason}${body.error ? ` (${body.error})` : ""}`, body.error);
  }
  return body;
}

async function graphql(name, variables) {
  const query = await graphqlDocument(name);
  const body = await bffJson("/graphql", { method: "POST", body: JSON.stringify({ query, variables }) });
  if (Array.isArray(body.errors) && body.errors.length) throw new ServiceError(body.errors[0].message);
  return body.data;
}

// The Storefront API, straight from the browser with the public token (no customer token: the BFF adds that).
async function storefront(name, variables = {}) {
  const withFragment = name.startsWith("cart");
  const parts = await Promise.all(
    [name, ...(withFragment ? ["cart-fields"] : [])].map((doc) => storedDocument(`/storefront/${doc}.graphql`)),
  );
  const res = await fetch(STOREFRONT_URL, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Shopify-Storefront-Access-Token": STOREFRONT_TOKEN },
    body: JSON.stringify({ query: parts.join("\n"), variables }),
  });
  if (!res.ok) throw new ServiceError(`The shop answered HTTP ${res.status}.`);
  const body = await res.json();
  if (Array.isArray(body.errors) && body.errors.length) throw new ServiceError(body.errors[0].message);
  return body.data;
}

function loginUrl() {
  // Come back to this page without any ?login_error from an earlier attempt.
  const params = new URLSearchParams({ return_to: location.origin + location.pathname, locale: $("locale").value });
  return `${BFF_URL}/auth/login?${params}`;
}

// --- Rendering helpers ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child != null)); // strings become Text nodes: always escaped
  return node;
}

function money({ amount, currencyCode }) {
  return new Intl.NumberFormat(undefined, { style: "currency", currency: currencyCode }).format(Number(amount));
}

function date(when, options = { dateStyle: "medium" }) {
  return new Intl.DateTimeFormat(undefined, options).format(new Date(when));
}

const RELATIVE_UNITS = [
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
];

// "3 minutes ago", "yesterday"; under a minute is "just now" (the BFF's times are only exact to the minute).
function ago(unixSeconds) {
  const elapsed = Date.now() / 1000 - unixSeconds;
  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const [unit, size] of RELATIVE_UNITS) {
    if (elapsed >= size) return relative.format(-Math.floor(elapsed / size), unit);
  }
  return "just now";
}

function humanize(status) {
  const text = String(status || "").toLowerCase().replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function badge(status, tone) {
  return el("span", { class: `badge badge-${tone}` }, humanize(status));
}

const FINANCIAL_TONES = { PAID: "success", PENDING: "warning", AUTHORIZED: "warning", REFUNDED: "neutral" };
const FULFILLMENT_TONES = { FULFILLED: "success", UNFULFILLED: "warning", IN_PROGRESS: "info", ON_HOLD: "warning" };

function show(view) {
  $("loading").hidden = view !== "loading";
  $("signed-out").hidden = view !== "signed-out";
  $("signed-in").hidden = view !== "signed-in";
  $("unavailable").hidden = view !== "unavailable";
  $("account-menu").hidden = view !== "signed-in";
  document.body.dataset.view = view;
}

// --- The customer -----------------------------------------------------------------------------------

let currentAddress = null;

function renderProfile(customer) {
  const name = customer.displayName || [customer.firstName, customer.lastName].filter(Boolean).join(" ");
  const email = customer.emailAddress?.emailAddress || "";
  $("customer-name").textContent = name;
  $("customer-email").textContent = email;
  $("header-name").textContent = name;
  $("greeting-name").textContent = customer.firstName || name;
  const initials = [customer.firstName, customer.lastName].filter(Boolean).map((part) => part[0]).join("");
  $("avatar").textContent = (initials || email.charAt(0) || "?").toUpperCase();
}

function renderAddress(address) {
  currentAddress = address;
  const lines = address ? address.formatted : [];
  $("default-address").replaceChildren(...lines.flatMap((line, i) => (i ? [el("br"), line] : [line])));
  $("default-address").hidden = !address;
  $("no-address").hidden = Boolean(address);
  $("address-edit").hidden = !address;
}

function renderOrder(order) {
  const items = order.lineItems.nodes.map((item) =>
    el(
      "li",
      { class: "line-item", "data-testid": "line-item" },
      el(
        "div",
        { class: "line-item-main" },
        el("span", { class: "line-item-title" }, item.title),
        item.variantTitle ? el("span", { class: "line-item-variant" }, item.variantTitle) : null,
      ),
      el("span", { class: "line-item-qty" }, `${item.quantity} × ${item.price ? money(item.price) : ""}`.trim()),
      el("span", { class: "line-item-price" }, item.totalPrice ? money(item.totalPrice) : ""),
    ),
  );
  return el(
    "li",
    { class: "order", "data-testid": "order", "data-order-id": order.id },
    el(
      "div",
      { class: "order-header" },
      el(
        "div",
        {},
        el("h3", { class: "order-name", "data-testid": "order-name" }, `Order ${order.name}`),
        el("time", { class: "order-date", datetime: order.processedAt }, date(order.processedAt)),
      ),
      el(
        "div",
        { class: "order-meta" },
        badge(order.financialStatus, FINANCIAL_TONES[order.financialStatus] || "neutral"),
        badge(order.fulfillmentStatus, FULFILLMENT_TONES[order.fulfillmentStatus] || "neutral"),
        el(
          "span",
          { class: "order-total" },
          el("span", { class: "order-total-label" }, "Total"),
          el("strong", { "data-testid": "order-total" }, money(order.totalPrice)),
        ),
      ),
    ),
    el("ul", { class: "line-items" }, ...items),
  );
}

function renderOrders(orders) {
  $("orders").replaceChildren(...orders.map(renderOrder));
  $("orders-empty").hidden = orders.length > 0;
  $("orders-count").textContent = orders.length === 1 ? "1 order" : `${orders.length} orders`;
}

// --- The customer's devices (their sessions) ----------------------------------------------------------

function devicesError(message) {
  $("devices-error").textContent = message;
  $("devices-error").hidden = !message;
}

function renderDevice(session) {
  const times = [`Signed in ${date(session.created_at * 1000, { dateStyle: "medium", timeStyle: "short" })}`];
  if (session.current) times.push("active now");
  else if (session.last_used_at != null) times.push(`last active ${ago(session.last_used_at)}`);
  // This browser's own entry is the ordinary sign-out (the header's form, so the shop's logout runs too).
  const signOut = el(
    "button",
    {
      class: "button button-secondary button-small",
      type: session.current ? "submit" : "button",
      form: session.current ? "sign-out-form" : null,
      "data-testid": "device-sign-out",
    },
    "Sign out",
  );
  if (!session.current) signOut.addEventListener("click", () => endDevice(session.handle, signOut));
  return el(
    "li",
    { class: "device", "data-testid": "device", "data-current": session.current ? "true" : null },
    el(
      "div",
      { class: "device-main" },
      el(
        "span",
        { class: "device-title" },
        el("span", { class: "device-name", "data-testid": "device-name" }, session.device),
        session.current
          ? el("span", { class: "badge badge-success", "data-testid": "device-current" }, "This device")
          : null,
      ),
      el("span", { class: "muted", "data-testid": "device-times" }, times.join(" · ")),
    ),
    signOut,
  );
}

function renderDevices(sessions) {
  $("devices").replaceChildren(...sessions.map(renderDevice));
  const count = sessions.length;
  $("devices-count").textContent = count === 1 ? "1 device" : count ? `${count} devices` : "";
}

async function loadDevices() {
  try {
    const { sessions } = await bffJson("/auth/sessions");
    devicesError("");
    renderDevices(sessions);
  } catch (error) {
    if (error instanceof SessionEnded) return sessionEnded();
    devicesError(error instanceof ServiceError ? error.message : "Could not reach the account service.");
  }
}

async function endDevice(handle, button) {
  button.disabled = true;
  button.textContent = "Signing out…";
  devicesError("");
  try {
    await bffJson(`/auth/sessions/${encodeURIComponent(handle)}/end`, { method: "POST" });
  } catch (error) {
    if (error instanceof SessionEnded) return sessionEnded();
    // Already gone (signed out there, or expired): the fresh list below says so; anything else is an error.
    if (error.code !== "session_not_found") {
      button.disabled = false;
      button.textContent = "Sign out";
      return devicesError(error instanceof ServiceError ? error.message : "Could not reach the account service.");
    }
  }
  await loadDevices();
}

// --- Session states -----------------------------------------------------------------------------------

function hideNotices() {
  for (const id of ["session-expired", "service-error", "signed-out-notice"]) $(id).hidden = true;
}

// The signed-out card below the notice holds the one Sign in button (and the language picker).
function sessionEnded() {
  hideNotices();
  closeAddressForm();
  $("session-expired").hidden = false;
  show("signed-out");
}

function serviceError(error) {
  const unreachable = "Could not reach the account service.";
  $("service-error-text").textContent = error instanceof ServiceError ? error.message : unreachable;
  $("service-error").hidden = false;
}

// The account could not be loaded, and not for want of a session (that is a 401): an outage (502/503/504) or
// the BFF out of reach. Never the signed-out card under an outage notice while the session is intact:
// /auth/session says whether it is (`degraded` when the shop can't be reached for it).
async function accountUnavailable(error) {
  const status = await bffJson("/auth/session").catch(() => null);
  if (status && !status.authenticated) return show("signed-out");
  show("unavailable");
  if (status) {
    // Still signed in: keep the header's sign-out within reach.
    $("header-name").textContent = status.customer?.email || "";
    $("account-menu").hidden = false;
  }
  serviceError(error);
}

async function loadAccount() {
  hideNotices();
  show("loading");
  signedIn = false;
  renderDevices([]);
  devicesError("");
  try {
    const { customer } = await graphql("customer");
    renderProfile(customer);
    renderAddress(customer.defaultAddress);
    renderOrders(customer.orders.nodes);
    signedIn = true;
    show("signed-in");
    loadDevices();
  } catch (error) {
    if (error instanceof SessionEnded) {
      // No session cookie at all is the ordinary signed-out visitor; a cookie whose session ended is not.
      if (error.code === "session_expired") return sessionEnded();
      if (sessionStorage.getItem(SIGNED_OUT_KEY)) $("signed-out-notice").hidden = false;
      return show("signed-out");
    }
    await accountUnavailable(error);
  } finally {
    sessionStorage.removeItem(SIGNED_OUT_KEY);
    loadShop();
  }
}

// --- The shop and the cart -----------------------------------------------------------------------------

let signedIn = false;

function cartError(message) {
  $("cart-error").textContent = message;
  $("cart-error").hidden = !message;
}

function renderProducts(products) {
  $("products").replaceChildren(
    ...products.map((product) => {
      const variant = product.variants.nodes[0];
      const add = el(
        "button",
        { class: "button button-secondary button-small", type: "button", "data-testid": "add-to-cart" },
        "Add to cart",
      );
      add.addEventListener("click", () => addToCart(variant.id, add));
      return el(
        "li",
        { class: "product", "data-testid": "product" },
        el("span", { class: "product-title", "data-testid": "product-title" }, product.title),
        el("span", { class: "muted" }, variant.title),
        el("span", { class: "product-price" }, money(variant.price)),
        add,
      );
    }),
  );
}

// The shop's name heads the page, so two storefronts open side by side (`make dev-shops`) say whose each is.
function renderShopName(name) {
  $("shop-name").textContent = name;
  $("brand-mark").textContent = name.charAt(0).toUpperCase();
  document.title = `Your account · ${name}`;
}

function renderCart(cart) {
  const lines = cart ? cart.lines.nodes : [];
  $("cart-lines").replaceChildren(
    ...lines.map((line) =>
      el(
        "li",
        { class: "cart-line", "data-testid": "cart-line" },
        el("span", {}, `${line.merchandise.product.title} \u00d7 ${line.quantity}`),
        el("span", {}, money(line.cost.totalAmount)),
      ),
    ),
  );
  $("cart-empty").hidden = lines.length > 0;
  const items = cart ? cart.totalQuantity : 0;
  $("cart-count").textContent = items === 1 ? "1 item" : items ? `${items} items` : "";
  $("cart-total").textContent = cart && lines.length ? `Total ${money(cart.cost.totalAmount)}` : "";
  $("cart-total").hidden = !lines.length;
  $("checkout-form").hidden = !lines.length;
  $("checkout-cart-id").value = cart ? cart.id : "";
  if (!cart) $("cart-linked").hidden = true;
}

function forgetCart() {
  localStorage.removeItem(CART_KEY);
  renderCart(null);
}

// The signed-in customer on the cart, set by the BFF with their token (a fetch: it needs X-CSRF).
async function linkCart(cartId) {
  const res = await bff("/cart/buyer-identity", { method: "POST", body: JSON.stringify({ cartId }) });
  const body = await res.json().catch(() => ({}));
  if (res.ok) {
    $("cart-linked").hidden = false;
    return;
  }
  if (body.error === "cart_not_found") return forgetCart();
  if (body.error === "session_expired") return sessionEnded();
  if (body.error !== "cart_disabled" && body.error !== "not_authenticated") {
    cartError(`${body.detail || `HTTP ${res.status}`}${body.error ? ` (${body.error})` : ""}`);
  }
}

async function loadShop() {
  try {
    const [{ shop, products }, stored] = await Promise.all([
      storefront("products"),
      localStorage.getItem(CART_KEY) ? storefront("cart", { id: localStorage.getItem(CART_KEY) }) : null,
    ]);
    renderShopName(shop.name);
    renderProducts(products.nodes);
    if (stored && !stored.cart) forgetCart();
    else renderCart(stored && stored.cart);
    $("shop").hidden = false;
    if (signedIn && stored && stored.cart) await linkCart(stored.cart.id);
  } catch (error) {
    $("shop").hidden = false;
    cartError(error instanceof ServiceError ? error.message : "Could not reach the shop.");
  }
}

async function addToCart(variantId, button) {
  button.disabled = true;
  cartError("");
  try {
    const lines = [{ merchandiseId: variantId, quantity: 1 }];
    const cartId = localStorage.getItem(CART_KEY);
    const data = cartId
      ? (await storefront("cart-lines-add", { cartId, lines })).cartLinesAdd
      : (await storefront("cart-create", { lines })).cartCreate;
    if (data.userErrors.length) {
      if (cartId && data.userErrors.some((e) => e.field?.[0] === "cartId")) forgetCart();
      return cartError(data.userErrors[0].message);
    }
    localStorage.setItem(CART_KEY, data.cart.id);
    renderCart(data.cart);
    if (signedIn && !cartId) await linkCart(data.cart.id);
  } catch (error) {
    cartError(error instanceof ServiceError ? error.message : "Could not reach the shop.");
  } finally {
    button.disabled = false;
  }
}

// --- The address form -----------------------------------------------------------------------------------

const ADDRESS_FIELDS = ["address1", "address2", "city", "zip", "zoneCode", "territoryCode"];

function openAddressForm() {
  for (const name of ADDRESS_FIELDS) {
    $(name).value = currentAddress?.[name] || "";
    $(name).removeAttribute("aria-invalid");
  }
  $("address-errors").hidden = true;
  $("address-success").hidden = true;
  $("address-form").hidden = false;
  $("default-address").hidden = true;
  $("address-edit").hidden = true;
  $("address1").focus();
}

function closeAddressForm() {
  $("address-form").hidden = true;
  renderAddress(currentAddress);
}

function showUserErrors(userErrors) {
  const list = $("address-errors");
  list.replaceChildren(
    ...userErrors.map((error) =>
      el("li", { "data-code": error.code }, error.message, " ", el("code", {}, error.code || "")),
    ),
  );
  list.hidden = false;
  for (const error of userErrors) {
    const field = error.field?.[error.field.length - 1];
    if (ADDRESS_FIELDS.includes(field)) $(field).setAttribute("aria-invalid", "true");
  }
}

async function saveAddress(event) {
  event.preventDefault();
  const address = Object.fromEntries(ADDRESS_FIELDS.map((name) => [name, $(name).value.trim()]));
  address.territoryCode = address.territoryCode.toUpperCase();
  address.zoneCode = address.zoneCode.toUpperCase();
  const save = $("address-save");
  save.disabled = true;
  save.textContent = "Saving…";
  $("address-errors").hidden = true;
  for (const name of ADDRESS_FIELDS) $(name).removeAttribute("aria-invalid");
  try {
    const data = await graphql("address-update", { addressId: currentAddress.id, address });
    const { customerAddress, userErrors } = data.customerAddressUpdate;
    if (userErrors.length) return showUserErrors(userErrors);
    currentAddress = customerAddress;
    closeAddressForm();
    $("address-success").hidden = false;
  } catch (error) {
    if (error instanceof SessionEnded) return sessionEnded();
    serviceError(error);
  } finally {
    save.disabled = false;
    save.textContent = "Save address";
  }
}

// --- Wiring -----------------------------------------------------------------------------------------------

function showLoginError() {
  const params = new URLSearchParams(location.search);
  const code = params.get("login_error");
  if (!code) return;
  const known = Object.hasOwn(LOGIN_ERRORS, code) ? LOGIN_ERRORS[code] : UNKNOWN_LOGIN_ERROR;
  $("login-error-text").textContent = known.text;
  $("login-error-code").textContent = code;
  $("login-error").dataset.side = known.ourSide ? "ours" : "yours";
  $("login-error").hidden = false;
  if (known.retry === false) {
    // No retry prompt: the next attempt would fail the same way until the shop's setup is fixed.
    $("sign-in").disabled = true;
    $("sign-in-fineprint").textContent = "Signing in is unavailable for now.";
  }
  // Shown once: a reload or a bookmark should not repeat an old failure.
  params.delete("login_error");
  const query = params.toString();
  history.replaceState(null, "", location.pathname + (query ? `?${query}` : "") + location.hash);
}

$("locale").value = localStorage.getItem(LOCALE_KEY) || $("locale").value;
$("locale").addEventListener("change", () => localStorage.setItem(LOCALE_KEY, $("locale").value));
$("sign-in").addEventListener("click", () => location.assign(loginUrl()));
$("sign-out-form").action = `${BFF_URL}/auth/logout`;
$("checkout-form").action = `${BFF_URL}/cart/checkout`;
$("sign-out-form").addEventListener("submit", () => sessionStorage.setItem(SIGNED_OUT_KEY, "1"));
$("address-edit").addEventListener("click", openAddressForm);
$("address-cancel").addEventListener("click", closeAddressForm);
$("address-form").addEventListener("submit", saveAddress);
$("retry").addEventListener("click", loadAccount);

showLoginError();
loadAccount();
