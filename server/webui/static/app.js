/* The student chat page: a conversation with the tutor over the gateway's own
 * /v1/chat/completions (streamed server-sent events), each reply rendered as Markdown with KaTeX
 * math and sanitised by DOMPurify before it reaches the page. Loaded by index.html (served at /
 * when WEB_UI=1); no build step. The conversation and the API key live in this tab's
 * sessionStorage only. */
(() => {
  "use strict";

  const CHAT_URL = "v1/chat/completions";
  const MODELS_URL = "v1/models";
  const STORE_MESSAGES = "socratic.messages";
  const STORE_KEY = "socratic.apiKey";

  const $ = (id) => document.getElementById(id);
  const ui = {
    log: $("log"), intro: $("intro"), model: $("model"), newChat: $("new"),
    form: $("ask"), input: $("input"), send: $("send"), stop: $("stop"),
    status: $("status"), error: $("error"),
    dialog: $("key-dialog"), keyForm: $("key-form"), key: $("key"), keyReason: $("key-reason"),
  };

  let messages = loadMessages(); // [{role, content}] as sent to the gateway
  let controller = null; // the AbortController of the reply being streamed
  let generation = 0; // bumped by "New conversation": a late end of an old stream is ignored

  class HttpError extends Error {
    constructor(status, text) { super(text); this.status = status; }
  }
  class StreamError extends Error {}

  // --- rendering: Markdown + math -> sanitised HTML -------------------------------------------

  const render = makeRenderer();

  function makeRenderer() {
    if (!window.marked || !window.DOMPurify || !window.katex) return null;
    const md = new window.marked.Marked({ gfm: true, breaks: true });
    md.use({
      extensions: [mathBlock(), mathInline()],
      // Raw HTML in a reply is shown as text, never parsed: the tutor's words are not markup.
      renderer: { html: ({ text }) => escapeHtml(text) },
    });
    window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A") {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    });
    const purify = {
      FORBID_TAGS: ["style", "img", "form", "input", "button", "textarea"],
      // KaTeX's MathML (read by screen readers) keeps its TeX source in an <annotation>;
      // without these two tags DOMPurify drops the wrappers and leaves the source as text.
      ADD_TAGS: ["semantics", "annotation"],
      ADD_ATTR: ["target", "encoding"],
    };
    return (text) => window.DOMPurify.sanitize(md.parse(text), purify);
  }

  function tex(source, displayMode) {
    const html = window.katex.renderToString(source, {
      displayMode, throwOnError: false, trust: false, strict: "ignore", maxExpand: 1000,
    });
    return displayMode ? `<div class="math-display">${html}</div>` : html;
  }

  // $$...$$ or \[...\] alone on its lines.
  function mathBlock() {
    const rule = /^ {0,3}(?:\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\])[ \t]*(?:\n+|$)/;
    return {
      name: "mathBlock", level: "block",
      start: (src) => src.match(/^ {0,3}(?:\$\$|\\\[)/m)?.index,
      tokenizer(src) {
        const m = rule.exec(src);
        if (m) return { type: "mathBlock", raw: m[0], text: (m[1] ?? m[2]).trim() };
      },
      renderer: (token) => tex(token.text, true),
    };
  }

  // \(...\), $...$ (no space inside the dollars, no digit after: "$5 and $10" stays text),
  // and $$...$$ or \[...\] inside a paragraph.
  function mathInline() {
    const rules = [
      [/^\$\$([\s\S]+?)\$\$/, true],
      [/^\\\[([\s\S]+?)\\\]/, true],
      [/^\\\(([\s\S]+?)\\\)/, false],
      [/^\$(?!\s)((?:\\.|[^\\$\n])+?)(?<!\s)\$(?!\d)/, false],
    ];
    return {
      name: "mathInline", level: "inline",
      start: (src) => src.match(/\$|\\[([]/)?.index,
      tokenizer(src) {
        for (const [rule, display] of rules) {
          const m = rule.exec(src);
          if (m) return { type: "mathInline", raw: m[0], text: m[1].trim(), display };
        }
      },
      renderer: (token) => tex(token.text, token.display),
    };
  }

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  function paint(content, role, text) {
    if (role === "assistant" && render) content.innerHTML = render(text);
    else content.textContent = text; // the student's own words, and the no-library fallback
  }

  // --- the transcript ---------------------------------------------------------------------------

  function addMessage(role, text) {
    const item = document.createElement("li");
    item.className = `msg ${role}`;
    const who = document.createElement("span");
    who.className = "visually-hidden";
    who.textContent = role === "user" ? "You said:" : "Tutor said:";
    const content = document.createElement("div");
    content.className = "content";
    const note = document.createElement("p");
    note.className = "note";
    note.hidden = true;
    item.append(who, content, note);
    paint(content, role, text);
    ui.log.append(item);
    ui.intro.hidden = true;
    scrollToEnd();
    return { item, content, note };
  }

  function noteOn(bubble, text) {
    bubble.note.textContent = text;
    bubble.note.hidden = false;
  }

  function scrollToEnd() {
    window.scrollTo({ top: document.body.scrollHeight });
  }

  // Repaints at most once per frame however fast the tokens come.
  function painter(bubble) {
    let latest = "";
    let queued = false;
    return (text) => {
      latest = text;
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        paint(bubble.content, "assistant", latest);
        scrollToEnd();
      });
    };
  }

  // --- talking to the gateway -------------------------------------------------------------------

  function headers() {
    const key = sessionStorage.getItem(STORE_KEY);
    const h = { "Content-Type": "application/json" };
    if (key) h.Authorization = `Bearer ${key}`;
    return h;
  }

  async function httpError(resp) {
    let body = null;
    try { body = await resp.json(); } catch { /* not JSON: the status says enough */ }
    const error = body?.error ?? {};
    const wait = resp.headers.get("Retry-After");
    const inSeconds = wait ? `in ${wait} seconds` : "in a moment";
    const texts = {
      401: "The tutor needs a valid API key.",
      429: `The tutor has too many messages right now. Try again ${inSeconds}.`,
      503: `The tutor is starting. Try again ${inSeconds}.`,
      504: "The tutor took too long to answer. Try again.",
    };
    let text = texts[resp.status];
    if (["too_many_messages", "context_length_exceeded"].includes(error.code)) {
      text = "This conversation is too long for the tutor. Start a new conversation.";
    }
    text ??= `The tutor could not answer (${resp.status}${error.message ? `: ${error.message}` : ""}).`;
    return new HttpError(resp.status, text);
  }

  // Reads the event stream; onText gets each piece of the reply; returns the finish reason.
  async function readStream(resp, onText) {
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let finish = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const data = buffer.slice(0, cut).replace(/^data: ?/, "");
        buffer = buffer.slice(cut + 2);
        if (data === "[DONE]") return finishOrThrow(finish);
        const chunk = parseChunk(data);
        if (chunk.error) throw new StreamError(chunk.error.message || "the engine failed");
        const choice = chunk.choices?.[0];
        if (choice?.delta?.content) onText(choice.delta.content);
        if (choice?.finish_reason) finish = choice.finish_reason;
      }
    }
    return finishOrThrow(finish);
  }

  function parseChunk(data) {
    try { return JSON.parse(data); } catch { throw new StreamError("the reply arrived garbled"); }
  }

  function finishOrThrow(finish) {
    if (!finish) throw new StreamError("the connection closed before the reply ended");
    return finish;
  }

  // --- one exchange -----------------------------------------------------------------------------

  async function ask(text) {
    const mine = generation;
    clearError();
    messages.push({ role: "user", content: text });
    const question = addMessage("user", text);
    const bubble = addMessage("assistant", "");
    bubble.item.setAttribute("aria-busy", "true");
    setStreaming(true);
    controller = new AbortController();
    let reply = "";
    const repaint = painter(bubble);
    let outcome;
    try {
      const resp = await fetch(CHAT_URL, {
        method: "POST", headers: headers(), signal: controller.signal,
        body: JSON.stringify({ messages, stream: true }),
      });
      if (!resp.ok) throw await httpError(resp);
      outcome = await readStream(resp, (piece) => repaint((reply += piece)));
    } catch (e) {
      outcome = e;
    }
    if (mine !== generation) return; // the conversation was reset meanwhile
    controller = null;
    setStreaming(false);
    bubble.item.removeAttribute("aria-busy");
    settle(outcome, text, reply, question, bubble);
  }

  // Keeps what the student should see: a reply (whole or cut short) joins the conversation;
  // nothing at all takes the question back into the input box with the reason.
  function settle(outcome, text, reply, question, bubble) {
    paint(bubble.content, "assistant", reply);
    if (reply) {
      messages.push({ role: "assistant", content: reply });
      saveMessages();
      if (outcome === "length") noteOn(bubble, "The reply reached its length limit.");
      else if (outcome?.name === "AbortError") noteOn(bubble, "Stopped.");
      else if (outcome instanceof Error) noteOn(bubble, "The reply broke off.");
    } else {
      messages.pop();
      question.item.remove();
      bubble.item.remove();
      ui.intro.hidden = messages.length > 0;
      if (!ui.input.value) ui.input.value = text;
    }
    if (outcome instanceof Error && outcome.name !== "AbortError") showError(describe(outcome));
    else ui.status.textContent = outcome?.name === "AbortError" ? "Stopped." : "";
    if (outcome instanceof HttpError && outcome.status === 401) askForKey(outcome.message);
  }

  function describe(error) {
    if (error instanceof HttpError) return error.message;
    if (error instanceof StreamError) return `The reply broke off: ${error.message}.`;
    return "Cannot reach the tutor. Check the connection and try again.";
  }

  // --- controls ---------------------------------------------------------------------------------

  function setStreaming(on) {
    ui.send.hidden = on;
    ui.stop.hidden = !on;
    ui.status.textContent = on ? "The tutor is writing…" : "";
  }

  function showError(text) {
    ui.error.textContent = text;
    ui.error.hidden = false;
  }

  function clearError() {
    ui.error.hidden = true;
    ui.error.textContent = "";
  }

  function submit() {
    const text = ui.input.value.trim();
    if (!text || controller) return;
    ui.input.value = "";
    ui.input.focus();
    ask(text);
  }

  function stop() {
    if (controller) controller.abort();
  }

  function newConversation() {
    generation += 1;
    stop();
    controller = null;
    setStreaming(false);
    messages = [];
    saveMessages();
    ui.log.replaceChildren();
    ui.intro.hidden = false;
    clearError();
    ui.status.textContent = "New conversation.";
    ui.input.focus();
  }

  function loadMessages() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORE_MESSAGES) || "[]");
      return Array.isArray(saved) ? saved : [];
    } catch {
      return [];
    }
  }

  function saveMessages() {
    sessionStorage.setItem(STORE_MESSAGES, JSON.stringify(messages));
  }

  // --- API key ----------------------------------------------------------------------------------

  function askForKey(reason) {
    ui.keyReason.textContent = reason;
    ui.key.value = "";
    if (!ui.dialog.open) ui.dialog.showModal();
    ui.key.focus();
  }

  // Asks the gateway whether this tab may talk to it, and which model it serves.
  async function probe() {
    let resp;
    try {
      resp = await fetch(MODELS_URL, { headers: headers() });
    } catch {
      return showError("Cannot reach the tutor. Check the connection and reload the page.");
    }
    if (resp.status === 401) {
      const had = sessionStorage.getItem(STORE_KEY);
      sessionStorage.removeItem(STORE_KEY);
      return askForKey(had ? "That key was refused. Try another." : "This tutor needs an API key.");
    }
    if (resp.ok) {
      const body = await resp.json();
      ui.model.textContent = body.data?.[0]?.id ?? "";
    }
  }

  // --- wiring -----------------------------------------------------------------------------------

  ui.form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  ui.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && controller) stop();
  });
  ui.stop.addEventListener("click", () => { stop(); ui.input.focus(); });
  ui.newChat.addEventListener("click", newConversation);
  ui.keyForm.addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(STORE_KEY, ui.key.value.trim());
    ui.dialog.close();
    ui.input.focus();
    probe();
  });

  for (const m of messages) addMessage(m.role, m.content);
  if (!render) ui.status.textContent = "Formatting is off: the page's libraries are missing.";
  ui.input.focus();
  probe();
})();
