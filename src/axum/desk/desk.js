// The tidings support desk. Plain JavaScript, no dependencies.
//
// Every string that comes from the agent API (names, messages, reasons, reports) goes into the
// page as text: through `textContent` or `createTextNode`, never `innerHTML`. Links are made
// only for http(s) URLs, as elements whose `href` is set after the URL was parsed.
"use strict";

(() => {
  const TOKEN_KEY = "tidings.desk.token";
  const CAMPAIGN_KEY = "tidings.desk.campaign";
  const API = (document.querySelector('meta[name="tidings-api"]')?.content || "/api").replace(/\/+$/, "");
  const CHANNEL_LABELS = { messenger: "facebook", email: "email" };
  const $ = (id) => document.getElementById(id);

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    contact: null, // the open conversation's contact id
    entries: new Map(), // its entries by id
    next: null, // cursor of the next page of conversations
    events: null, // AbortController of the event stream
    campaign: null, // the followed campaign id
    campaignTimer: null,
  };

  // ---- helpers ----------------------------------------------------------------------------

  /** An element with a class and text (both optional). */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function channelLabel(channel) {
    return CHANNEL_LABELS[channel] || String(channel);
  }

  function contactName(contact) {
    const name = [contact.first_name, contact.last_name].filter(Boolean).join(" ");
    return name || contact.email || contact.id;
  }

  function formatTime(ms) {
    if (typeof ms !== "number") return "";
    const at = new Date(ms);
    const today = new Date();
    const sameDay = at.toDateString() === today.toDateString();
    return sameDay
      ? at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : at.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function timeNode(ms) {
    const node = el("time", "when", formatTime(ms));
    if (typeof ms === "number") node.dateTime = new Date(ms).toISOString();
    return node;
  }

  /** A URL that may become a link: http(s) only, anything else stays text. */
  function safeHref(text) {
    try {
      const url = new URL(text);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function link(href, text) {
    const a = el("a", null, text);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    return a;
  }

  /** Appends `text` to `parent` as text nodes, with http(s) URLs as links. */
  function appendLinkified(parent, text) {
    const pattern = /\bhttps?:\/\/[^\s<>"']+/gi;
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      let url = match[0];
      // Trailing punctuation belongs to the sentence, not the URL.
      const trimmed = url.replace(/[.,;:!?)\]}]+$/, "");
      url = trimmed;
      const href = safeHref(url);
      if (!href) continue;
      parent.append(document.createTextNode(text.slice(last, match.index)));
      parent.append(link(href, url));
      last = match.index + url.length;
    }
    parent.append(document.createTextNode(text.slice(last)));
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Calls `fn` once, `ms` after the last of a burst of calls. */
  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  function showResult(node, text, isError) {
    node.textContent = text || "";
    node.classList.toggle("error", Boolean(isError));
  }

  // ---- the agent API ----------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + state.token, Accept: "application/json" };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, init);
    } catch {
      throw new ApiError(0, "the server cannot be reached", "network");
    }
    if (response.status === 401) {
      signOut("The token was refused; sign in again.");
      throw new ApiError(401, "unauthorized", "unauthorized");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const message = (data && typeof data.error === "string" && data.error) || "HTTP " + response.status;
      throw new ApiError(response.status, message, data && data.code);
    }
    return data;
  }

  function errorText(error) {
    if (error instanceof ApiError) return error.code && error.code !== "network" ? `${error.message} (${error.code})` : error.message;
    return String(error && error.message ? error.message : error);
  }

  // ---- sign-in ----------------------------------------------------------------------------

  function showLogin(message) {
    $("desk").hidden = true;
    $("tabs").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    stopEvents();
    clearInterval(state.campaignTimer);
    showLogin(message);
  }

  async function start() {
    $("login").hidden = true;
    $("desk").hidden = false;
    $("tabs").hidden = false;
    $("sign-out").hidden = false;
    try {
      await loadConversations();
    } catch (error) {
      if (error.status === 401) return;
      showResult($("list-error"), errorText(error), true);
    }
    listen();
    route();
    const campaign = sessionStorage.getItem(CAMPAIGN_KEY);
    if (campaign) followCampaign(campaign);
  }

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
  $("sign-out").addEventListener("click", () => signOut(""));

  // ---- views ------------------------------------------------------------------------------

  function showView(name) {
    for (const tab of document.querySelectorAll(".tab")) {
      tab.setAttribute("aria-pressed", String(tab.dataset.view === name));
    }
    $("view-conversations").hidden = name !== "conversations";
    $("view-campaigns").hidden = name !== "campaigns";
  }

  function route() {
    const hash = location.hash;
    if (hash === "#campaigns") {
      showView("campaigns");
    } else if (hash.startsWith("#c/")) {
      showView("conversations");
      const id = decodeURIComponent(hash.slice(3));
      if (id && id !== state.contact) openConversation(id);
    } else {
      showView("conversations");
    }
  }

  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      if (tab.dataset.view === "campaigns") location.hash = "#campaigns";
      else location.hash = state.contact ? "#c/" + encodeURIComponent(state.contact) : "";
      route();
    });
  }
  window.addEventListener("hashchange", () => state.token && route());

  // ---- the conversation list --------------------------------------------------------------

  async function loadConversations(append) {
    const query = new URLSearchParams({ limit: "50" });
    if (append && state.next) query.set("after", state.next);
    const page = await api("GET", "/conversations?" + query);
    const list = $("conversations");
    if (!append) list.replaceChildren();
    for (const summary of page.conversations || []) list.append(summaryItem(summary));
    state.next = page.next || null;
    $("list-more").hidden = !state.next;
    $("list-empty").hidden = list.children.length > 0;
    showResult($("list-error"), "");
  }

  const refreshConversations = debounce(() => {
    if (!state.token) return;
    loadConversations(false).catch((error) => {
      if (error.status !== 401) showResult($("list-error"), errorText(error), true);
    });
  }, 150);

  function summaryItem(summary) {
    const item = el("li");
    const button = el("button", "summary");
    button.type = "button";
    button.dataset.contact = summary.contact.id;
    if (summary.contact.id === state.contact) button.setAttribute("aria-current", "true");
    button.append(el("span", "who", contactName(summary.contact)), timeNode(summary.last_at));
    const snippet = el("span", "snippet");
    const prefix = summary.last_direction === "outgoing" ? "You: " : "";
    snippet.textContent = prefix + (summary.last_text ?? "(no text)");
    button.append(snippet);
    if (summary.unread > 0) {
      const unread = el("span", "unread", summary.unread);
      unread.title = summary.unread + " unread";
      button.append(unread);
    }
    button.addEventListener("click", () => {
      location.hash = "#c/" + encodeURIComponent(summary.contact.id);
    });
    item.append(button);
    return item;
  }

  $("list-more").addEventListener("click", () => {
    loadConversations(true).catch((error) => showResult($("list-error"), errorText(error), true));
  });

  function markCurrent() {
    for (const button of document.querySelectorAll(".summary")) {
      if (button.dataset.contact === state.contact) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  // ---- one conversation -------------------------------------------------------------------

  async function openConversation(id) {
    state.contact = id;
    state.entries = new Map();
    $("entries").replaceChildren();
    showResult($("tool-result"), "");
    showResult($("reply-result"), "");
    $("pick").hidden = true;
    $("thread").hidden = false;
    markCurrent();
    await reloadConversation(true);
  }

  async function reloadConversation(scroll) {
    const id = state.contact;
    if (!id) return;
    let data;
    try {
      data = await api("GET", "/conversations/" + encodeURIComponent(id) + "?limit=100");
    } catch (error) {
      if (error.status !== 401 && id === state.contact) showResult($("tool-result"), errorText(error), true);
      return;
    }
    if (id !== state.contact) return; // another conversation was opened meanwhile
    renderContact(data.contact);
    renderTransports(data.transports || []);
    const list = $("entries");
    list.replaceChildren();
    state.entries = new Map();
    for (const entry of data.entries || []) addEntry(entry);
    if (scroll) list.scrollTop = list.scrollHeight;
    markRead();
  }

  const reloadSoon = debounce(() => reloadConversation(false), 100);

  function renderContact(contact) {
    $("contact-name").textContent = contactName(contact);
    const meta = $("contact-meta");
    meta.replaceChildren();
    meta.append(document.createTextNode(contact.email || "no e-mail"));
    if (contact.technical) {
      const badge = el("span", "badge", "technical address");
      badge.title = "Created by auto-registration: not a real e-mail address";
      meta.append(badge);
    }
    meta.append(el("span", "badge", "id " + contact.id));
  }

  function renderTransports(transports) {
    const box = $("reply-transports");
    const ticked = new Set([...box.querySelectorAll("input:checked")].map((input) => input.value));
    box.replaceChildren(el("legend", null, "Send by"));
    let any = false;
    for (const transport of transports) {
      const label = channelLabel(transport.channel);
      const item = el("span", "transport");
      item.dataset.channel = transport.channel;
      if (transport.available) {
        any = true;
        const choice = el("label");
        const input = el("input");
        input.type = "checkbox";
        input.name = "channel";
        input.value = transport.channel;
        input.checked = ticked.has(transport.channel);
        choice.append(input, document.createTextNode(label));
        item.append(choice);
      } else {
        item.className = "transport transport-off";
        item.textContent = label + ": not available";
      }
      if (transport.note) item.append(el("span", "transport-note", " " + transport.note));
      box.append(item);
    }
    if (!any) box.append(el("span", "transport-off", "No transport reaches this contact."));
  }

  function addEntry(entry) {
    const node = entryNode(entry);
    const old = state.entries.get(entry.id);
    state.entries.set(entry.id, entry);
    if (old) {
      const previous = $("entries").querySelector(`[data-entry="${CSS.escape(entry.id)}"]`);
      if (previous) {
        previous.replaceWith(node);
        return;
      }
    }
    // Keep transport-time order when a live event arrives out of order.
    const list = $("entries");
    const later = [...list.children].find((child) => Number(child.dataset.at) > entry.at);
    list.insertBefore(node, later || null);
  }

  function entryNode(entry) {
    const outgoing = entry.direction === "outgoing";
    const node = el("li", "entry " + (outgoing ? "outgoing" : "incoming"));
    node.dataset.entry = entry.id;
    node.dataset.at = String(entry.at);
    node.dataset.direction = entry.direction;

    const meta = el("div", "meta");
    meta.append(el("span", "direction", outgoing ? "outgoing" : "incoming"), document.createTextNode(" · "), timeNode(entry.at));
    if (entry.author) meta.append(document.createTextNode(" · by "), el("span", "author", entry.author));
    node.append(meta);

    const bubble = el("div", "bubble");
    const text = el("span", "text");
    if (typeof entry.text === "string") appendLinkified(text, entry.text);
    bubble.append(text);
    if (entry.choice) bubble.append(el("span", "choice", "chose: " + entry.choice));
    for (const attachment of entry.attachments || []) {
      const row = el("span", "attachment");
      const label = attachmentKind(attachment.kind) + " attachment";
      const href = typeof attachment.url === "string" ? safeHref(attachment.url) : null;
      if (href) row.append(link(href, label));
      else row.textContent = label + (attachment.url ? " (" + attachment.url + ")" : "");
      bubble.append(row);
    }
    if (Array.isArray(entry.edits) && entry.edits.length) {
      const edited = el("details", "edited");
      edited.append(el("summary", null, "edited" + (entry.edits.length > 1 ? " " + entry.edits.length + " times" : "")));
      const history = el("ol", "edit-history");
      if (typeof entry.original_text === "string") history.append(el("li", "original", entry.original_text));
      for (const edit of entry.edits.slice(0, -1)) history.append(el("li", null, edit.text));
      edited.append(history);
      bubble.append(edited);
    }
    if (entry.reaction) {
      const r = entry.reaction;
      const label = [r.emoji, r.name].filter((part) => typeof part === "string" && part).join(" ");
      bubble.append(el("span", "reaction", label || "reacted"));
    }
    node.append(bubble);

    if (outgoing) {
      const deliveries = el("ul", "deliveries");
      for (const delivery of entry.deliveries || []) deliveries.append(deliveryNode(delivery));
      if (!(entry.deliveries || []).length) deliveries.append(el("li", "delivery", "no transport took it"));
      node.append(deliveries);
    }
    return node;
  }

  /** An attachment's kind: `"image"`, or `{"other": "sticker"}` for a kind the crate does not know. */
  function attachmentKind(kind) {
    if (typeof kind === "string") return kind;
    if (kind && typeof kind === "object") {
      const named = Object.values(kind).find((value) => typeof value === "string");
      if (named) return named;
    }
    return "file";
  }

  function deliveryNode(delivery) {
    const node = el("li", "delivery");
    node.dataset.channel = delivery.channel;
    node.dataset.status = delivery.status;
    node.append(el("span", "channel", channelLabel(delivery.channel)), document.createTextNode(" "), el("span", "status", delivery.status));
    if (delivery.reason) node.append(el("span", "reason", ": " + delivery.reason));
    if ((delivery.message_ids || []).length) node.title = "message ids: " + delivery.message_ids.join(", ");
    return node;
  }

  /** Tells the API the agent has seen the open conversation up to its newest incoming entry. */
  let readUpTo = new Map();
  function markRead() {
    if (document.hidden || !state.contact) return;
    let newest = null;
    for (const entry of state.entries.values()) {
      if (entry.direction === "incoming" && (newest === null || entry.at > newest)) newest = entry.at;
    }
    const id = state.contact;
    if (newest === null || (readUpTo.get(id) ?? -Infinity) >= newest) return;
    readUpTo.set(id, newest);
    api("POST", "/conversations/" + encodeURIComponent(id) + "/read", { up_to: newest })
      .then(refreshConversations)
      .catch(() => readUpTo.delete(id));
  }
  document.addEventListener("visibilitychange", markRead);

  $("reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = state.contact;
    const text = $("reply-text").value;
    const channels = [...$("reply-transports").querySelectorAll("input:checked")].map((input) => input.value);
    if (!text.trim()) return;
    if (!channels.length) {
      showResult($("reply-result"), "Tick at least one transport.", true);
      return;
    }
    const send = $("reply-send");
    send.disabled = true;
    showResult($("reply-result"), "Sending…");
    try {
      const answer = await api("POST", "/conversations/" + encodeURIComponent(id) + "/reply", { text, channels });
      $("reply-text").value = "";
      const summary = (answer.deliveries || [])
        .map((d) => channelLabel(d.channel) + " " + d.status + (d.reason ? ": " + d.reason : ""))
        .join(", ");
      showResult($("reply-result"), "Reply recorded" + (summary ? ": " + summary : "."));
      if (id === state.contact) await reloadConversation(true);
      refreshConversations();
    } catch (error) {
      if (error.status !== 401) showResult($("reply-result"), errorText(error), true);
    } finally {
      send.disabled = false;
    }
  });

  $("flow-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const flow = $("flow-id").value.trim();
    if (!flow || !state.contact) return;
    try {
      const answer = await api("POST", "/flows/" + encodeURIComponent(flow) + "/start", { contact_id: state.contact });
      showResult($("tool-result"), "Flow " + flow + " started: instance " + answer.instance);
    } catch (error) {
      if (error.status !== 401) showResult($("tool-result"), errorText(error), true);
    }
  });

  $("connect-link").addEventListener("click", async () => {
    if (!state.contact) return;
    try {
      const answer = await api("POST", "/connect-links", { contact_id: state.contact });
      const result = $("tool-result");
      showResult(result, "");
      const href = safeHref(answer.url);
      result.append(document.createTextNode("Connect link: "));
      result.append(href ? link(href, answer.url) : document.createTextNode(String(answer.url)));
      if (typeof answer.expires_at === "number") result.append(document.createTextNode(" (expires " + formatTime(answer.expires_at) + ")"));
    } catch (error) {
      if (error.status !== 401) showResult($("tool-result"), errorText(error), true);
    }
  });

  // ---- campaigns --------------------------------------------------------------------------

  function defaultCampaignId() {
    const now = new Date();
    const pad = (n) => String(n).padStart(2, "0");
    return `campaign-${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-${pad(now.getHours())}${pad(now.getMinutes())}`;
  }
  $("campaign-id").value = defaultCampaignId();

  function parseJson(text, what) {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new Error(what + " is not valid JSON: " + error.message);
    }
  }

  $("campaign-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("campaign-error");
    showResult(error, "");
    let body;
    try {
      const vars = parseJson($("campaign-vars").value.trim() || "{}", "Variables");
      if (vars === null || typeof vars !== "object" || Array.isArray(vars)) throw new Error("Variables must be a JSON object.");
      const channels = [...$("campaign-form").querySelectorAll('input[name="channel"]:checked')].map((input) => input.value);
      if (!channels.length) throw new Error("Tick at least one transport.");
      body = {
        id: $("campaign-id").value.trim(),
        segment: parseJson($("campaign-segment").value, "The segment"),
        text: $("campaign-text").value,
        channels,
        login_links: $("campaign-login").checked,
        vars,
      };
    } catch (problem) {
      showResult(error, problem.message, true);
      return;
    }
    try {
      const answer = await api("POST", "/campaigns", body);
      followCampaign(answer.id || body.id, answer.state);
    } catch (problem) {
      if (problem.status !== 401) showResult(error, errorText(problem), true);
    }
  });

  $("follow-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("follow-id").value.trim();
    if (id) followCampaign(id);
  });

  function followCampaign(id, initialState) {
    state.campaign = id;
    sessionStorage.setItem(CAMPAIGN_KEY, id);
    $("campaign").hidden = false;
    $("campaign-name").textContent = id;
    $("campaign-report").replaceChildren();
    $("campaign-report-title").hidden = true;
    if (initialState) renderCampaignState(initialState);
    pollCampaign();
  }

  async function pollCampaign() {
    clearTimeout(state.campaignTimer);
    const id = state.campaign;
    if (!id || !state.token) return;
    let data;
    try {
      data = await api("GET", "/campaigns/" + encodeURIComponent(id));
    } catch (error) {
      if (error.status === 401 || id !== state.campaign) return;
      showResult($("campaign-counts"), errorText(error), true);
      if (error.status !== 404) state.campaignTimer = setTimeout(pollCampaign, 3000);
      return;
    }
    if (id !== state.campaign) return;
    renderCampaignState(data.state);
    if (data.progress) renderProgress(data.progress);
    renderReport(data.report);
    // Live events move the bar; polling catches the state and the final report.
    if (data.state === "running") state.campaignTimer = setTimeout(pollCampaign, 2000);
  }

  const pollSoon = debounce(pollCampaign, 300);

  function renderCampaignState(value) {
    const node = $("campaign-state");
    node.textContent = value || "";
    node.dataset.state = value || "";
  }

  function renderProgress(progress) {
    const bar = $("campaign-bar");
    const done = Number(progress.done) || 0;
    if (typeof progress.total === "number" && progress.total > 0) {
      bar.max = progress.total;
      bar.value = Math.min(done, progress.total);
    } else if (progress.total === 0) {
      bar.max = 1;
      bar.value = 1;
    } else {
      bar.removeAttribute("value"); // indeterminate until the segment's end is known
    }
    const total = typeof progress.total === "number" ? " of " + progress.total : "";
    const rate = typeof progress.rate === "number" ? progress.rate.toFixed(1) + "/s" : "";
    const parts = [
      done + total + " done",
      (progress.sent ?? 0) + " sent",
      (progress.skipped ?? 0) + " skipped",
      (progress.failed ?? 0) + " failed",
    ];
    if (rate) parts.push(rate);
    showResult($("campaign-counts"), parts.join(" · "));
  }

  /** Any JSON value as nested definition lists, every key and value as text. */
  function valueNode(value) {
    if (value === null || value === undefined) return el("span", "muted", "none");
    if (Array.isArray(value)) {
      if (!value.length) return el("span", "muted", "none");
      if (value.every((item) => item === null || typeof item !== "object")) return el("span", null, value.join(", "));
      const list = el("ol");
      for (const item of value) {
        const row = el("li");
        row.append(valueNode(item));
        list.append(row);
      }
      return list;
    }
    if (typeof value === "object") {
      const keys = Object.keys(value);
      // A serialized Duration.
      if (keys.length === 2 && typeof value.secs === "number" && typeof value.nanos === "number") {
        const secs = value.secs + value.nanos / 1e9;
        return el("span", null, secs < 1 ? Math.round(secs * 1000) + " ms" : secs.toFixed(1) + " s");
      }
      if (!keys.length) return el("span", "muted", "none");
      const list = el("dl");
      for (const key of keys) {
        const dd = el("dd");
        dd.append(valueNode(value[key]));
        list.append(el("dt", null, key.replace(/_/g, " ")), dd);
      }
      return list;
    }
    return el("span", null, String(value));
  }

  function renderReport(report) {
    const box = $("campaign-report");
    box.replaceChildren();
    $("campaign-report-title").hidden = report === null || report === undefined;
    if (report !== null && report !== undefined) box.append(valueNode(report));
  }

  // ---- live updates -----------------------------------------------------------------------

  function setLive(on) {
    const node = $("live");
    node.dataset.state = on ? "on" : "off";
    node.textContent = on ? "live" : "offline";
  }

  function stopEvents() {
    if (state.events) state.events.abort();
    state.events = null;
    setLive(false);
  }

  /** Follows `GET /events` with fetch (EventSource cannot send the bearer header). */
  async function listen() {
    stopEvents();
    const controller = new AbortController();
    state.events = controller;
    let backoff = 500;
    while (!controller.signal.aborted && state.token) {
      try {
        const response = await fetch(API + "/events", {
          headers: { Authorization: "Bearer " + state.token, Accept: "text/event-stream" },
          cache: "no-store",
          signal: controller.signal,
        });
        if (response.status === 401) {
          signOut("The token was refused; sign in again.");
          return;
        }
        if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
        setLive(true);
        backoff = 500;
        // Whatever happened while the stream was down is fetched again.
        refreshConversations();
        if (state.contact) reloadSoon();
        if (state.campaign) pollSoon();
        await readEvents(response.body, controller.signal);
      } catch {
        if (controller.signal.aborted) return;
      }
      setLive(false);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 15000);
    }
  }

  async function readEvents(body, signal) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let name = "message";
    let data = [];
    while (!signal.aborted) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (data.length) dispatch(name, data.join("\n"));
          name = "message";
          data = [];
        } else if (line.startsWith(":")) {
          // a comment (keep-alive)
        } else {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let content = colon < 0 ? "" : line.slice(colon + 1);
          if (content.startsWith(" ")) content = content.slice(1);
          if (field === "event") name = content || "message";
          else if (field === "data") data.push(content);
        }
      }
    }
  }

  function dispatch(name, text) {
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      return;
    }
    if (!event || typeof event !== "object") return;
    if (name === "message") {
      if (event.contact_id === state.contact && event.entry) {
        addEntry(event.entry);
        const list = $("entries");
        list.scrollTop = list.scrollHeight;
        markRead();
      }
      refreshConversations();
    } else if (name === "receipt") {
      if (event.contact_id === state.contact) reloadSoon();
    } else if (name === "resync") {
      // The stream fell behind and events were dropped: read everything again.
      refreshConversations();
      if (state.contact) reloadSoon();
      if (state.campaign) pollSoon();
    } else if (name === "campaign") {
      if (event.id === state.campaign) {
        if (event.progress) renderProgress(event.progress);
        pollSoon();
      }
    }
  }

  // ---- start ------------------------------------------------------------------------------

  if (state.token) start();
  else showLogin("");
})();
