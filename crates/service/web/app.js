// The EZchain web wallet: one page over the wallet service's own API (docs/SERVICE.md).
// It keeps no secret: the session cookie is HttpOnly, passwords leave the form only in the
// request that needs them, and every POST carries a fresh X-EZ-Nonce.
"use strict";

const $ = (id) => document.getElementById(id);

// What to do about each error code the API answers (the message says what happened).
const ADVICE = {
  unauthorized: "Your session has ended: sign in again.",
  login_failed: "Run `ezchain auth login-link` for a new link, or paste the token from `ezchain auth show-token`.",
  cross_origin: "Open the wallet from the address `ezchain serve` printed.",
  password_required: "Unlock the wallet first (the Key panel).",
  wrong_password: "Check the password and try again.",
  password_too_short: "Choose a password of at least 8 characters.",
  wallet_exists: "This service already has a wallet.",
  wallet_not_found: "Create or import a wallet first.",
  invalid_mnemonic: "Check the words: they must be the recovery words, in order, separated by spaces.",
  invalid_recipient: "Copy the recipient's address exactly: its upper and lower case letters are a checksum.",
  insufficient_funds: "Lower the amount, or receive or request coins first.",
  invalid_amount: "The amount is a whole number of units, at least 1.",
  self_transfer: "This is your own address: pay someone else's.",
  node_unreachable: "No node answers. Check the Network panel; the payment goes on when a node is back.",
  node_refused: "A node refused the request: see the message.",
  wallet_busy: "The wallet is busy with another request: try again in a moment.",
  pending_bundle_exists: "The previous payment is still being confirmed: wait for it.",
  request_in_progress: "This payment is already being processed: wait for its answer.",
  replay_detected: "Reload the page and try again.",
  rate_limited: "Too many requests: wait a minute.",
  faucet_disabled: "This network has no faucet.",
  faucet_empty: "The faucet has no coins left.",
  faucet_rate_limited: "The faucet limits how often it pays: try later.",
  send_failed: "The payment could not be included; its coins are spendable again.",
  network_error: "The wallet service does not answer: is `ezchain serve` running?",
};

const state = {
  wallet: null,       // /wallet/show
  balance: null,      // /wallet/balance
  unlockedUntil: 0,   // ms since the epoch; 0: locked
  tipMadeAt: 0,       // ms since the epoch, by the tip block's timestamp
  networkAt: 0,       // when the network panel was last refreshed
  refreshing: false,
  mnemonic: null,     // words shown once, kept only until confirmed
};

function nonce() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return "ui-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// One call to the service; resolves to `data`, rejects with an ApiError carrying its code.
async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (method === "POST") {
    init.headers["X-EZ-Nonce"] = nonce();
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body || {});
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError("network_error", "the wallet service did not answer", 0);
  }
  let answer;
  try {
    answer = await response.json();
  } catch (e) {
    throw new ApiError("bad_answer", `HTTP ${response.status} without a JSON answer`, response.status);
  }
  if (!answer.ok) {
    const error = answer.error || {};
    if (error.code === "unauthorized") showSignIn();
    throw new ApiError(error.code || "error", error.message || "", response.status);
  }
  return answer.data;
}

// Shows an error in `element` (or the page's alert): its code, message and what to do.
function showError(error, element) {
  const code = error.code || "error";
  const message = error.message || String(error);
  const advice = ADVICE[code] || "";
  if (element) {
    element.textContent = "";
    const strong = document.createElement("strong");
    strong.textContent = code;
    element.append(strong, " " + message + (advice ? " — " + advice : ""));
    element.dataset.code = code;
    element.hidden = false;
    return;
  }
  $("alert-code").textContent = code;
  $("alert-message").textContent = message;
  $("alert-advice").textContent = advice;
  $("alert").dataset.code = code;
  $("alert").hidden = false;
}

function clearError(element) {
  element.hidden = true;
  element.textContent = "";
  delete element.dataset.code;
}

// Runs one user action: its button disabled meanwhile (no double submit), its error shown in
// `errorElement` with the code and what to do.
async function act(buttonId, errorElement, work) {
  clearError(errorElement);
  $(buttonId).disabled = true;
  try {
    await work();
  } catch (e) {
    showError(e, errorElement);
  } finally {
    $(buttonId).disabled = false;
  }
}

function show(view) {
  for (const id of ["view-loading", "view-sign-in", "view-onboard", "view-mnemonic", "view-wallet"]) {
    $(id).hidden = id !== view;
  }
  $("view-network").hidden = view !== "view-wallet" && view !== "view-onboard";
  $("view-charts").hidden = view !== "view-wallet";
  $("sign-out").hidden = view === "view-sign-in" || view === "view-loading";
}

function showSignIn() {
  show("view-sign-in");
}

function shortAddress(address) {
  return address ? address.slice(0, 8) + "…" + address.slice(-6) : "–";
}

function timeText(ms) {
  return ms ? new Date(ms).toLocaleString() : "–";
}

function ageText(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

// ---- Sign-in -------------------------------------------------------------------------------

async function signInWithLinkCode() {
  const match = location.hash.match(/^#login=([0-9a-f]+)$/);
  if (!match) return;
  // The code leaves the address bar at once: it is single-use, but nobody needs to see it.
  history.replaceState(null, "", location.pathname);
  try {
    await api("POST", "/ui/session", { code: match[1] });
  } catch (e) {
    show("view-sign-in");
    showError(e, $("sign-in-error"));
  }
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError($("sign-in-error"));
  const field = $("sign-in-token");
  try {
    await api("POST", "/ui/session", { token: field.value.trim() });
    field.value = "";
    await start();
  } catch (e) {
    showError(e, $("sign-in-error"));
  }
});

$("sign-out").addEventListener("click", async () => {
  try {
    await api("POST", "/ui/logout");
  } catch (e) {
    // Signed out either way.
  }
  state.wallet = null;
  showSignIn();
});

$("alert-close").addEventListener("click", () => {
  $("alert").hidden = true;
});

// ---- Create, import, confirm the recovery words --------------------------------------------

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("create-error");
  clearError(error);
  const password = $("create-password").value;
  if (password !== $("create-password-again").value) {
    showError({ code: "password_mismatch", message: "the two passwords differ" }, error);
    return;
  }
  await act("create-submit", error, async () => {
    const created = await api("POST", "/wallet/create", { password });
    // The key stays unlocked for the default time, so the first payment needs no second prompt.
    await api("POST", "/wallet/unlock", { password }).catch(() => {});
    $("create-password").value = "";
    $("create-password-again").value = "";
    showMnemonic(created.mnemonic);
  });
});

$("import-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await act("import-submit", $("import-error"), async () => {
    const password = $("import-password").value;
    const mnemonic = $("import-mnemonic").value.trim().split(/\s+/).join(" ");
    await api("POST", "/wallet/import", { mnemonic, password });
    await api("POST", "/wallet/unlock", { password }).catch(() => {});
    $("import-mnemonic").value = "";
    $("import-password").value = "";
    await start();
  });
});

function warnBeforeLeaving(event) {
  event.preventDefault();
  event.returnValue = "";
}

function showMnemonic(mnemonic) {
  const words = mnemonic.split(" ");
  state.mnemonic = words;
  const list = $("mnemonic-words");
  list.textContent = "";
  for (const word of words) {
    const item = document.createElement("li");
    item.textContent = word;
    list.append(item);
  }
  // Two different positions, chosen at random.
  const pick = new Uint32Array(2);
  crypto.getRandomValues(pick);
  const a = pick[0] % words.length;
  let b = pick[1] % (words.length - 1);
  if (b >= a) b += 1;
  const [first, second] = a < b ? [a, b] : [b, a];
  state.check = [first, second];
  $("mnemonic-label-a").textContent = `Word ${first + 1}`;
  $("mnemonic-label-b").textContent = `Word ${second + 1}`;
  $("mnemonic-check-a").value = "";
  $("mnemonic-check-b").value = "";
  clearError($("mnemonic-error"));
  // The words exist nowhere else: leaving now would lose them.
  window.addEventListener("beforeunload", warnBeforeLeaving);
  show("view-mnemonic");
}

$("mnemonic-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const [first, second] = state.check;
  const typed = [$("mnemonic-check-a").value.trim().toLowerCase(), $("mnemonic-check-b").value.trim().toLowerCase()];
  if (typed[0] !== state.mnemonic[first] || typed[1] !== state.mnemonic[second]) {
    showError(
      { code: "mnemonic_mismatch", message: `words ${first + 1} and ${second + 1} do not match` },
      $("mnemonic-error"),
    );
    return;
  }
  state.mnemonic = null;
  $("mnemonic-words").textContent = "";
  window.removeEventListener("beforeunload", warnBeforeLeaving);
  await start();
});

// ---- Key: unlock and lock ------------------------------------------------------------------

$("unlock-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await act("unlock-submit", $("lock-error"), async () => {
    const minutes = Number($("unlock-minutes").value) || 5;
    const answer = await api("POST", "/wallet/unlock", {
      password: $("unlock-password").value,
      ttl_seconds: Math.round(minutes * 60),
    });
    $("unlock-password").value = "";
    state.unlockedUntil = Date.now() + answer.ttl_seconds * 1000;
    renderLock();
    refresh();
  });
});

$("lock").addEventListener("click", async () => {
  try {
    await api("POST", "/wallet/lock");
    state.unlockedUntil = 0;
    renderLock();
  } catch (e) {
    showError(e, $("lock-error"));
  }
});

function renderLock() {
  const left = Math.max(0, Math.round((state.unlockedUntil - Date.now()) / 1000));
  const unlocked = left > 0;
  $("lock-state").textContent = unlocked
    ? `Unlocked — locks in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`
    : "Locked: unlock to pay, receive or use the faucet.";
  $("lock-state").dataset.unlocked = unlocked ? "true" : "false";
  $("unlock-form").hidden = unlocked;
  $("lock").hidden = !unlocked;
}

// ---- Address -------------------------------------------------------------------------------

$("copy-address").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("address").textContent);
    $("copy-done").hidden = false;
    setTimeout(() => ($("copy-done").hidden = true), 1500);
  } catch (e) {
    // No clipboard permission: select the text so the user can copy it.
    const range = document.createRange();
    range.selectNodeContents($("address"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }
});

// ---- Balance, receive, faucet --------------------------------------------------------------

function renderBalance(balance) {
  state.balance = balance;
  $("balance-available").textContent = balance.available_balance;
  $("balance-pending").textContent = balance.pending_outgoing;
  $("balance-total").textContent = balance.total_balance;
  checkAmount();
}

// The latest incoming packages, from the history: shown however they arrived (this page, the
// background receive, another client), and still there after a reload.
function renderReceived(items) {
  const list = $("received");
  list.textContent = "";
  const receives = items.filter((r) => r.kind === "receive").sort((a, b) => b.created_at_ms - a.created_at_ms).slice(0, 5);
  for (const record of receives) {
    const item = document.createElement("li");
    item.dataset.status = record.status;
    item.dataset.txRef = paymentId(record);
    item.textContent =
      record.status === "accepted"
        ? `Verified: ${record.amount} from ${shortAddress(record.counterparty)} (payment ${shortId(paymentId(record))}, height ${record.height})`
        : `Refused: a package from ${shortAddress(record.counterparty)} failed verification (${record.reason || "invalid"}); nothing was counted.`;
    list.append(item);
  }
}

function receiveSummary(report) {
  const accepted = (report.accepted || []).length;
  const rejected = (report.rejected || []).length;
  const parts = [];
  if (accepted) parts.push(`${accepted} payment(s) verified`);
  if (rejected) parts.push(`${rejected} package(s) refused`);
  if (report.deferred) parts.push(`${report.deferred} waiting for their block`);
  $("receive-summary").textContent = parts.length ? parts.join(", ") + "." : "No new payments.";
}

$("receive").addEventListener("click", () =>
  act("receive", $("balance-error"), async () => {
    receiveSummary(await api("POST", "/tx/receive"));
    await refresh();
  }),
);

$("faucet-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await act("faucet-submit", $("balance-error"), async () => {
    const granted = await api("POST", "/tx/faucet", { amount: Number($("faucet-amount").value) });
    receiveSummary(granted.received || {});
    await refresh();
  });
});

// ---- Pay -----------------------------------------------------------------------------------

// The payment in progress survives a reload: same client_tx_id, so it is never paid twice.
const SEND_KEY = "ezchain.send";
const STEPS = ["signed", "submitted", "finalized", "delivered"];
let recipientCheck = { value: null, valid: false };
let recipientTimer = null;

function savedSend() {
  try {
    return JSON.parse(localStorage.getItem(SEND_KEY) || "null");
  } catch (e) {
    return null;
  }
}

function newClientTxId() {
  return "web-" + nonce().slice(3);
}

function checkAmount() {
  const hint = $("send-amount-hint");
  const amount = Number($("send-amount").value);
  hint.className = "hint";
  hint.textContent = "";
  if (!$("send-amount").value) return;
  if (!Number.isInteger(amount) || amount < 1) {
    hint.textContent = "a whole number of units, at least 1";
    hint.className = "hint bad";
  } else if (state.balance && amount > state.balance.available_balance) {
    hint.textContent = `more than your available balance (${state.balance.available_balance})`;
    hint.className = "hint bad";
  }
}

$("send-amount").addEventListener("input", checkAmount);

$("send-recipient").addEventListener("input", () => {
  clearTimeout(recipientTimer);
  recipientCheck = { value: null, valid: false };
  const value = $("send-recipient").value.trim();
  const hint = $("send-recipient-hint");
  hint.className = "hint";
  hint.textContent = "";
  $("send-recipient").removeAttribute("aria-invalid");
  if (!value) return;
  recipientTimer = setTimeout(() => checkRecipient(value), 250);
});

async function checkRecipient(value) {
  const hint = $("send-recipient-hint");
  try {
    const checked = await api("POST", "/tx/check-recipient", { recipient: value });
    if ($("send-recipient").value.trim() !== value) return;
    recipientCheck = { value, valid: !checked.is_self };
    hint.className = checked.is_self ? "hint bad" : "hint good";
    hint.dataset.code = checked.is_self ? "self_transfer" : "valid";
    hint.textContent = checked.is_self ? "this is your own address" : `valid address ${checked.recipient}`;
    $("send-recipient").setAttribute("aria-invalid", checked.is_self ? "true" : "false");
  } catch (e) {
    if ($("send-recipient").value.trim() !== value) return;
    recipientCheck = { value, valid: false };
    hint.className = "hint bad";
    hint.dataset.code = e.code;
    hint.textContent = `${e.code}: ${e.message}`;
    $("send-recipient").setAttribute("aria-invalid", "true");
  }
}

function renderProgress(status) {
  const progress = $("send-progress");
  progress.hidden = false;
  const reached = STEPS.indexOf(status);
  for (const item of progress.children) {
    const index = STEPS.indexOf(item.dataset.step);
    item.className = status === "failed" ? "failed" : index < reached || status === "delivered" ? "done" : index === reached ? "current" : "";
  }
  progress.dataset.status = status;
}

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("send-error");
  clearError(error);
  if (savedSend()) return; // one payment at a time; it is already on its way
  const recipient = $("send-recipient").value.trim();
  const amount = Number($("send-amount").value);
  if (recipientCheck.value === recipient && !recipientCheck.valid) {
    showError({ code: $("send-recipient-hint").dataset.code || "invalid_recipient", message: $("send-recipient-hint").textContent }, error);
    return;
  }
  const send = { client_tx_id: newClientTxId(), recipient, amount, started_ms: Date.now() };
  localStorage.setItem(SEND_KEY, JSON.stringify(send));
  await drive(send);
});

// Sends (or resends: the same client_tx_id resumes, never repeats) until delivered or final.
async function drive(send) {
  const error = $("send-error");
  $("send-submit").disabled = true;
  $("send-summary").textContent = `Paying ${send.amount} to ${shortAddress(send.recipient)}…`;
  let wait = 0;
  try {
    for (let attempt = 0; attempt < 200; attempt++) {
      let record;
      try {
        record = await api("POST", "/tx/send", {
          recipient: send.recipient,
          amount: send.amount,
          client_tx_id: send.client_tx_id,
          wait_seconds: wait,
        });
      } catch (e) {
        if (["wallet_busy", "request_in_progress", "node_unreachable", "replay_detected", "network_error"].includes(e.code)) {
          showError(e, error);
          await new Promise((resolve) => setTimeout(resolve, 2000));
          continue;
        }
        // Refused before anything was signed (or failed for good): a new form, a new id.
        localStorage.removeItem(SEND_KEY);
        $("send-progress").hidden = true;
        $("send-summary").textContent = "";
        showError(e, error);
        return;
      }
      clearError(error);
      renderProgress(record.status);
      wait = 3;
      if (record.status === "delivered") {
        localStorage.removeItem(SEND_KEY);
        const delay = record.confirmation_delay_ms;
        $("send-summary").textContent =
          `Paid ${record.amount} to ${shortAddress(record.counterparty)}: payment ${shortId(paymentId(record))}` +
          (delay != null ? `, final after ${(delay / 1000).toFixed(2)} s.` : ".");
        $("send-form").reset();
        $("send-recipient-hint").textContent = "";
        recipientCheck = { value: null, valid: false };
        await refresh();
        return;
      }
      if (record.status === "failed") {
        localStorage.removeItem(SEND_KEY);
        showError({ code: "send_failed", message: record.reason || "the payment could not be included" }, error);
        return;
      }
      if (record.stalled) showError(record.stalled, error);
    }
  } finally {
    $("send-submit").disabled = false;
    refresh();
  }
}

// ---- History, checkpoints, network ---------------------------------------------------------

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

function renderHistory(items) {
  const body = $("history").querySelector("tbody");
  body.textContent = "";
  const sorted = items.slice().sort((a, b) => b.created_at_ms - a.created_at_ms);
  for (const record of sorted) {
    const row = document.createElement("tr");
    row.dataset.clientTxId = record.client_tx_id || "";
    row.dataset.txRef = paymentId(record);
    cell(row, timeText(record.created_at_ms));
    cell(row, record.kind === "send" ? "Sent" : "Received");
    cell(row, shortAddress(record.counterparty)).title = record.counterparty;
    cell(row, String(record.amount), "amount");
    cell(row, record.status).dataset.state = record.status;
    cell(row, shortId(paymentId(record))).title = paymentId(record);
    body.append(row);
  }
  $("history-empty").hidden = sorted.length > 0;
}

// Ranges are inclusive: [begin, end] holds end − begin + 1 units.
function rangeText(value) {
  if (value && value.begin !== undefined) return `Units ${value.begin}–${value.end} (${value.end - value.begin + 1} units)`;
  return JSON.stringify(value);
}

// The payment's id, the same on both sides (the payer's bundle hash and its sequence number).
function paymentId(record) {
  if (record.tx_ref) return record.tx_ref;
  if (record.bundle_hash && record.seq != null) return `${record.bundle_hash}:${record.seq}`;
  return (record.package_ids || [])[0] || "";
}

function shortId(id) {
  const [hash, seq] = id.split(":");
  return hash.length > 14 ? hash.slice(0, 10) + "…" + hash.slice(-4) + (seq ? ":" + seq : "") : id;
}

function renderCheckpoints(checkpoints) {
  const list = $("checkpoints");
  list.textContent = "";
  for (const checkpoint of checkpoints) {
    const item = document.createElement("li");
    const mine = state.wallet && checkpoint.owner.toLowerCase() === state.wallet.address.toLowerCase();
    item.textContent =
      `${rangeText(checkpoint.value)}: held by ${mine ? "you" : shortAddress(checkpoint.owner)} until height ${checkpoint.height}. ` +
      "If they come back to you, their history before that point needs no checking again.";
    list.append(item);
  }
  $("checkpoints-empty").hidden = checkpoints.length > 0;
}

async function refreshNetwork() {
  const [info, nodes, ready] = await Promise.all([
    api("GET", "/network/info"),
    api("GET", "/node/status"),
    fetch("/readyz", { credentials: "same-origin" }).then((r) => r.json()).catch(() => null),
  ]);
  $("chain-id").textContent = info.chain_id != null ? String(info.chain_id) : "–";
  $("network-name").textContent = info.network;
  $("network-genesis").textContent = info.genesis_hash ? shortAddress(info.genesis_hash) : "–";
  $("network-genesis").title = info.genesis_hash || "";
  const body = $("nodes").querySelector("tbody");
  body.textContent = "";
  let height = null;
  for (const node of nodes.configured_nodes) {
    const row = document.createElement("tr");
    cell(row, node.node);
    cell(row, node.up ? "up" : "down").dataset.state = node.up ? "delivered" : "failed";
    cell(row, node.height != null ? String(node.height) : "–");
    cell(row, node.up ? "answers" : node.error || "");
    body.append(row);
    if (node.height != null) height = Math.max(height || 0, node.height);
  }
  const tip = info.tip;
  if (tip) {
    height = tip.height;
    // The tip's age by its block's timestamp, counted on locally between refreshes.
    state.tipMadeAt = tip.tip_age_ms != null ? Date.now() - tip.tip_age_ms : 0;
    $("network-validators").textContent =
      tip.validators_signing != null ? `${tip.validators_signing} of ${tip.validators}` : `certificate does not verify (${tip.validators} validators)`;
  } else {
    state.tipMadeAt = 0;
    $("network-validators").textContent = "no node answers";
  }
  $("chain-height").textContent = height != null ? String(height) : "–";
  // A 503 `not_ready` answer carries the same data, with the reasons.
  const readiness = ready && ready.data ? ready.data : null;
  $("network-ready").textContent = readiness ? (readiness.ready ? "ready" : "not ready") : "–";
  const reasons = $("network-reasons");
  reasons.textContent = "";
  for (const reason of (readiness && readiness.reasons) || []) {
    const item = document.createElement("li");
    item.textContent = reason;
    reasons.append(item);
  }
}

function renderTipAge() {
  $("chain-tip-age").textContent = state.tipMadeAt ? ageText(Math.max(0, Date.now() - state.tipMadeAt) / 1000) : "–";
}

// ---- Live checks ---------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svgElement(parent, name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  parent.append(element);
  return element;
}

function clockText(ms, seconds) {
  const at = new Date(ms);
  const two = (n) => String(n).padStart(2, "0");
  return `${two(at.getHours())}:${two(at.getMinutes())}` + (seconds ? `:${two(at.getSeconds())}` : "");
}

// A line chart: time on x, a zero baseline, y ticks with units, optional threshold lines.
// `series` is [{name, points: [[time_ms, value or null]]}]; gaps where a value is null.
function drawChart(svg, series, { unit, max, thresholds = [], format = (v) => String(v), empty = "no samples yet" }) {
  svg.textContent = "";
  const width = svg.clientWidth || 360;
  const height = svg.clientHeight || 180;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const left = 44, right = 8, top = 8, bottom = 22;
  const times = series.flatMap((s) => s.points.map((p) => p[0]));
  const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v != null));
  if (!times.length) {
    svgElement(svg, "text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, empty);
    return;
  }
  const t0 = Math.min(...times);
  const t1 = Math.max(t0 + 60000, ...times);
  const yMax = max != null ? max : Math.max(1, ...values, ...thresholds.map((t) => t.value)) * 1.1;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const y = (v) => top + (1 - v / yMax) * (height - top - bottom);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    svgElement(svg, "line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: i === 0 ? "axis" : "grid" });
    svgElement(svg, "text", { x: left - 4, y: y(v) + 3, "text-anchor": "end", class: "tick" }, format(v) + (i === 4 ? " " + unit : ""));
  }
  svgElement(svg, "line", { x1: left, x2: left, y1: top, y2: height - bottom, class: "axis" });
  for (let i = 0; i <= 3; i++) {
    const t = t0 + ((t1 - t0) * i) / 3;
    svgElement(svg, "text", { x: x(t), y: height - 6, "text-anchor": i === 0 ? "start" : i === 3 ? "end" : "middle", class: "tick" }, clockText(t, t1 - t0 < 600000));
  }
  for (const threshold of thresholds) {
    svgElement(svg, "line", { x1: left, x2: width - right, y1: y(threshold.value), y2: y(threshold.value), class: "threshold" });
  }
  series.forEach((s, index) => {
    let path = "";
    let pen = "M";
    for (const [t, v] of s.points) {
      if (v == null) {
        pen = "M";
        continue;
      }
      path += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
      pen = "L";
    }
    if (path) svgElement(svg, "path", { d: path, class: `line series-${index}` });
    // Dots too: a lone sample between gaps is a point, not an invisible segment.
    for (const [t, v] of s.points) {
      if (v != null) svgElement(svg, "circle", { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.5, class: `series-${index}` });
    }
    svgElement(svg, "text", { x: left + 6 + index * 110, y: top + 10, class: `legend series-${index}` }, s.name);
  });
}

async function refreshCharts() {
  const stats = await api("GET", "/ui/stats");
  const samples = stats.samples;
  $("view-charts").dataset.samples = String(samples.length);
  drawChart($("chart-success"), [{ name: "success ratio", points: samples.map((s) => [s.time_ms, s.success_ratio]) }], {
    unit: "",
    max: 1,
    thresholds: [{ value: 0.95 }],
    format: (v) => v.toFixed(2),
  });
  drawChart(
    $("chart-delay"),
    [
      { name: "p50", points: samples.map((s) => [s.time_ms, s.delay_p50_ms == null ? null : s.delay_p50_ms / 1000]) },
      { name: "p95", points: samples.map((s) => [s.time_ms, s.delay_p95_ms == null ? null : s.delay_p95_ms / 1000]) },
    ],
    { unit: "s", thresholds: [{ value: 30 }].filter((t) => samples.some((s) => (s.delay_p95_ms || 0) > 15000)), format: (v) => v.toFixed(1) },
  );
  const totals = {};
  for (const sample of samples) for (const [code, count] of Object.entries(sample.errors)) totals[code] = (totals[code] || 0) + count;
  const top = Object.entries(totals).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([code]) => code);
  drawChart(
    $("chart-errors"),
    top.map((code) => ({ name: code, points: samples.map((s) => [s.time_ms, s.errors[code] || 0]) })),
    {
      unit: "",
      // Whole counts on every tick: the top of the axis is a multiple of the 4 intervals.
      max: Math.max(4, Math.ceil((Math.max(0, ...top.flatMap((code) => samples.map((s) => s.errors[code] || 0))) * 1.1) / 4) * 4),
      format: (v) => v.toFixed(0),
      empty: samples.length ? "no refusals in these samples" : "no samples yet",
    },
  );
}

// ---- Start and refresh ---------------------------------------------------------------------

async function refresh() {
  if (state.refreshing || !state.wallet) return;
  state.refreshing = true;
  try {
    const shown = await api("GET", "/wallet/show");
    state.unlockedUntil = shown.unlocked_seconds_left ? Date.now() + shown.unlocked_seconds_left * 1000 : 0;
    renderLock();
    const [balance, history, checkpoints] = await Promise.all([
      api("GET", "/wallet/balance"),
      api("GET", "/tx/history"),
      api("GET", "/wallet/checkpoints"),
    ]);
    renderBalance(balance);
    renderHistory(history.items);
    renderReceived(history.items);
    renderCheckpoints(checkpoints.checkpoints);
    // The network panel asks every configured node (three probes): every third refresh is
    // enough, and the tip's age counts on locally in between.
    if (Date.now() - state.networkAt >= 15000) {
      state.networkAt = Date.now();
      await refreshNetwork();
    }
    await refreshCharts();
  } catch (e) {
    if (e.code !== "unauthorized") showError(e);
  } finally {
    state.refreshing = false;
  }
}

async function start() {
  await signInWithLinkCode();
  let session;
  try {
    session = await api("GET", "/ui/session");
  } catch (e) {
    show("view-sign-in");
    showError(e);
    return;
  }
  if (!session.signed_in) {
    show("view-sign-in");
    return;
  }
  try {
    state.wallet = await api("GET", "/wallet/show");
  } catch (e) {
    if (e.code === "wallet_not_found") {
      state.wallet = null;
      show("view-onboard");
      refreshNetwork().catch(() => {});
      return;
    }
    if (e.code !== "unauthorized") showError(e);
    return;
  }
  $("address").textContent = state.wallet.address;
  $("address-qr").src = "/wallet/address.svg?address=" + encodeURIComponent(state.wallet.address);
  show("view-wallet");
  await refresh();
  const pending = savedSend();
  if (pending) {
    $("send-recipient").value = pending.recipient;
    $("send-amount").value = pending.amount;
    drive(pending);
  }
}

setInterval(() => {
  renderLock();
  renderTipAge();
}, 1000);
setInterval(() => {
  if (!document.hidden) refresh();
}, 5000);
start();
