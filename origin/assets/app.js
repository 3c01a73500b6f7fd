// The chat page: sends questions to the streaming API and renders answers as they arrive.
//
// Answers and source titles come from a model and from documents, so none of them is ever
// parsed as HTML: every node is created with createElement and filled with textContent.
(function () {
  "use strict";

  var I18N = window.LibriAssistI18n;
  var t = I18N.t;

  // Relative, so the page keeps working when a proxy mounts it under a path prefix.
  var STREAM_URL = "api/v1/chat/stream";

  // The server's limits (protocol/src/limits.rs); the page stays under them instead of
  // letting a long conversation fail with a 400 on its twentieth question.
  var MAX_QUESTION_CHARS = 2000;
  var MAX_HISTORY_TURNS = 32;
  var MAX_TURN_CHARS = 8000;
  var MAX_BODY_BYTES = 60 * 1024; // the server accepts 64 KiB; keep room for the question

  // === SSE parsing ===

  // The stream endpoint is a POST, which EventSource cannot send, so the text/event-stream
  // format is parsed here. Chunks from the network split events and lines anywhere,
  // including between the CR and LF of one line ending.
  function SseParser(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.eventName = "";
    this.data = [];
  }

  SseParser.prototype.feed = function (text) {
    this.buffer += text;
    var re = /\r\n|\r|\n/g;
    var start = 0;
    var m;
    while ((m = re.exec(this.buffer)) !== null) {
      // A CR at the very end may be the first half of a CRLF still in flight.
      if (m[0] === "\r" && m.index === this.buffer.length - 1) break;
      this.line(this.buffer.slice(start, m.index));
      start = re.lastIndex;
    }
    this.buffer = this.buffer.slice(start);
  };

  SseParser.prototype.line = function (line) {
    if (line === "") {
      if (this.data.length > 0) {
        this.onEvent(this.eventName || "message", this.data.join("\n"));
      }
      this.eventName = "";
      this.data = [];
      return;
    }
    if (line.charAt(0) === ":") return; // keep-alive comment
    var colon = line.indexOf(":");
    var field = colon < 0 ? line : line.slice(0, colon);
    var value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charAt(0) === " ") value = value.slice(1);
    if (field === "event") this.eventName = value;
    else if (field === "data") this.data.push(value);
  };

  // === Safe rendering ===

  // Only absolute http(s) targets become links: javascript:, data: and friends stay text.
  function safeUrl(raw) {
    if (typeof raw !== "string" || raw.trim() === "") return null;
    var url;
    try {
      url = new URL(raw.trim(), window.location.href);
    } catch (e) {
      return null;
    }
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function externalLink(href, text) {
    var a = el("a", null, text);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    return a;
  }

  // Bold, italics, code, [text](url) links, bare URLs and [n] citations. Anything that does
  // not match stays literal text, so unbalanced markers mid-stream just show as typed.
  var INLINE = new RegExp(
    [
      "\\*\\*([^*\\n]+?)\\*\\*", // 1 bold
      "(?<![\\w])__([^_\\n]+?)__(?![\\w])", // 2 bold; not inside identifiers like window.__x__
      "\\[([^\\]\\n]+)\\]\\(((?:[^()\\s]|\\([^()\\s]*\\))+)\\)", // 3,4 link; one level of (parens) in the URL
      "\\[(\\d{1,3}(?:\\s*[,;]\\s*\\d{1,3})*)\\]", // 5 citations
      "`([^`\\n]+)`", // 6 code
      "(https?:\\/\\/[^\\s<>()\\[\\]\"']+)", // 7 bare URL
      "\\*([^\\s*](?:[^*\\n]*[^\\s*])?)\\*" // 8 italics
    ].join("|"),
    "g"
  );

  function renderInline(text, parent, ctx, depth) {
    var re = new RegExp(INLINE.source, "g");
    var last = 0;
    var m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      last = re.lastIndex;
      if (m[1] !== undefined || m[2] !== undefined) {
        var strong = el("strong");
        nested(m[1] !== undefined ? m[1] : m[2], strong, ctx, depth);
        parent.appendChild(strong);
      } else if (m[3] !== undefined) {
        var href = safeUrl(m[4]);
        if (href && /^https?:/i.test(m[4].trim())) parent.appendChild(externalLink(href, m[3]));
        else parent.appendChild(document.createTextNode(m[3]));
      } else if (m[5] !== undefined) {
        citations(m[5], parent, ctx);
      } else if (m[6] !== undefined) {
        parent.appendChild(el("code", null, m[6]));
      } else if (m[7] !== undefined) {
        // Sentence punctuation right after a URL belongs to the sentence.
        var url = m[7].replace(/[.,;:!?]+$/, "");
        var tail = m[7].slice(url.length);
        var safe = safeUrl(url);
        parent.appendChild(safe ? externalLink(safe, url) : document.createTextNode(url));
        if (tail) parent.appendChild(document.createTextNode(tail));
      } else if (m[8] !== undefined) {
        var em = el("em");
        nested(m[8], em, ctx, depth);
        parent.appendChild(em);
      }
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function nested(text, parent, ctx, depth) {
    if (depth >= 2) parent.textContent = text;
    else renderInline(text, parent, ctx, depth + 1);
  }

  function citations(list, parent, ctx) {
    var numbers = list.split(/\s*[,;]\s*/);
    var known = numbers.every(function (n) { return ctx.citeHref && ctx.citeHref(Number(n)); });
    if (!known) {
      parent.appendChild(document.createTextNode("[" + list + "]"));
      return;
    }
    numbers.forEach(function (n) {
      var a = el("a", "cite", "[" + n + "]");
      a.href = ctx.citeHref(Number(n));
      a.setAttribute("aria-label", t("sourceCite", { n: n }));
      parent.appendChild(a);
    });
  }

  // Paragraphs (blank-line separated, single newlines kept as line breaks), bullet and
  // numbered lists, quotes, and headings shown as bold lines so they do not disturb the
  // page's own heading outline.
  function renderMarkdown(text, container, ctx) {
    ctx = ctx || {};
    var frag = document.createDocumentFragment();
    var lines = String(text).split(/\r\n|\r|\n/);
    var para = null;
    var list = null;
    var item = null;
    var quote = null;

    function closeAll() {
      para = null;
      list = null;
      item = null;
      quote = null;
    }

    lines.forEach(function (raw) {
      var line = raw.replace(/\s+$/, "");
      var bullet = /^\s*[-*•]\s+(.*)$/.exec(line);
      var numbered = /^\s*(\d{1,4})[.)]\s+(.*)$/.exec(line);
      var heading = /^\s{0,3}#{1,6}\s+(.*)$/.exec(line);
      var quoted = /^\s{0,3}>\s?(.*)$/.exec(line);

      if (line.trim() === "") {
        closeAll();
      } else if (bullet || numbered) {
        var ordered = !!numbered;
        if (!list || (list.tagName === "OL") !== ordered) {
          para = null;
          quote = null;
          list = el(ordered ? "ol" : "ul");
          if (ordered && numbered[1] !== "1") list.start = Number(numbered[1]);
          frag.appendChild(list);
        }
        item = el("li");
        renderInline(ordered ? numbered[2] : bullet[1], item, ctx, 0);
        list.appendChild(item);
      } else if (heading) {
        closeAll();
        var p = el("p");
        var strong = el("strong");
        renderInline(heading[1], strong, ctx, 1);
        p.appendChild(strong);
        frag.appendChild(p);
      } else if (quoted) {
        if (!quote) {
          para = null;
          list = null;
          item = null;
          quote = el("blockquote");
          frag.appendChild(quote);
        } else {
          quote.appendChild(el("br"));
        }
        renderInline(quoted[1], quote, ctx, 0);
      } else if (item && /^\s+/.test(raw)) {
        // An indented line continues the list item above it.
        item.appendChild(document.createTextNode(" "));
        renderInline(line.trim(), item, ctx, 0);
      } else {
        list = null;
        item = null;
        quote = null;
        if (!para) {
          para = el("p");
          frag.appendChild(para);
        } else {
          para.appendChild(el("br"));
        }
        renderInline(line, para, ctx, 0);
      }
    });

    container.replaceChildren(frag);
  }

  // Retry-After is either seconds or an HTTP date; null when absent or unreadable.
  function parseRetryAfter(value, now) {
    if (value === null || value === undefined) return null;
    var v = String(value).trim();
    if (/^\d+$/.test(v)) return Number(v);
    var date = Date.parse(v);
    if (isNaN(date)) return null;
    return Math.max(0, Math.ceil((date - (now === undefined ? Date.now() : now)) / 1000));
  }

  // === The page ===

  var messages, form, input, sendBtn, stopBtn, newBtn, status;
  var history = []; // completed turns only: a cut answer would mislead the next one
  var sessionId = newSessionId();
  var current = null; // the exchange being streamed
  var exchangeCount = 0;

  function newSessionId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  function localize() {
    document.documentElement.lang = t.lang;
    document.title = t("title");
    document.querySelectorAll("[data-i18n]").forEach(function (node) {
      node.textContent = t(node.getAttribute("data-i18n"));
    });
    document.querySelectorAll("[data-i18n-placeholder]").forEach(function (node) {
      node.setAttribute("placeholder", t(node.getAttribute("data-i18n-placeholder")));
    });
    document.querySelectorAll("[data-i18n-aria-label]").forEach(function (node) {
      node.setAttribute("aria-label", t(node.getAttribute("data-i18n-aria-label")));
    });
  }

  function announce(text) {
    // Clearing first makes screen readers repeat a message identical to the previous one.
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 30);
  }

  function nearBottom() {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
  }

  function scrollToBottom() {
    messages.scrollTop = messages.scrollHeight;
  }

  // Trims the conversation to what the server accepts, dropping the oldest turns first.
  function historyForRequest(question) {
    var turns = history.slice(-MAX_HISTORY_TURNS).map(function (turn) {
      return { role: turn.role, content: turn.content.slice(0, MAX_TURN_CHARS) };
    });
    var encoder = new TextEncoder();
    while (turns.length > 0 &&
      encoder.encode(JSON.stringify({ question: question, history: turns, session_id: sessionId })).length > MAX_BODY_BYTES) {
      turns = turns.slice(2);
    }
    return turns;
  }

  function setStreaming(on) {
    var hadFocus = document.activeElement === sendBtn || document.activeElement === stopBtn;
    sendBtn.disabled = on;
    stopBtn.hidden = !on;
    messages.setAttribute("aria-busy", on ? "true" : "false");
    // The focused button was just disabled or hidden: keep keyboard users in the field.
    if (hadFocus) input.focus();
  }

  function addUserMessage(question) {
    var wrap = el("div", "msg user");
    wrap.appendChild(el("span", "who", t("you")));
    wrap.appendChild(el("div", "bubble", question));
    messages.appendChild(wrap);
    return wrap;
  }

  function addBotMessage(id) {
    var wrap = el("div", "msg bot");
    wrap.appendChild(el("span", "who", t("bot")));
    var bubble = el("div", "bubble streaming");
    bubble.id = "answer-" + id;
    var marks = el("div", "marks");
    marks.hidden = true;
    var answer = el("div", "answer");
    answer.appendChild(el("p", "thinking", t("thinking")));
    bubble.appendChild(marks);
    bubble.appendChild(answer);
    wrap.appendChild(bubble);
    messages.appendChild(wrap);
    return { wrap: wrap, bubble: bubble, marks: marks, answer: answer };
  }

  function renderMarks(view, meta) {
    view.marks.replaceChildren();
    var cache = String(meta.cache || "miss");
    view.bubble.setAttribute("data-cache", cache);
    view.bubble.setAttribute("data-mode", String(meta.mode || "generated"));
    if (cache !== "miss") {
      var semantic = cache === "semantic";
      var mark = el("span", "mark cache", t(semantic ? "semanticMark" : "cacheMark"));
      mark.title = t(semantic ? "semanticMarkTitle" : "cacheMarkTitle");
      view.marks.appendChild(mark);
    }
    if (meta.mode === "extractive") {
      var ex = el("span", "mark extractive", t("extractiveMark"));
      ex.title = t("extractiveMarkTitle");
      view.marks.appendChild(ex);
      // A tooltip reaches neither touch screens nor keyboards, and readers must know these
      // are quoted passages rather than a written answer: say it in the open.
      view.marks.appendChild(el("p", "mark-note", t("extractiveMarkTitle")));
    }
    view.marks.hidden = view.marks.childNodes.length === 0;
  }

  function renderSources(view, sources, exchangeId) {
    if (view.sources) view.sources.remove();
    view.sources = null;
    if (!Array.isArray(sources) || sources.length === 0) return;
    var box = el("div", "sources");
    var headingId = "sources-" + exchangeId;
    var h = el("h2", null, t("sources"));
    h.id = headingId;
    box.setAttribute("role", "group");
    box.setAttribute("aria-labelledby", headingId);
    var ol = el("ol");
    sources.forEach(function (src, i) {
      var li = el("li");
      li.id = "src-" + exchangeId + "-" + (i + 1);
      var title = src && src.title ? String(src.title) : String((src && src.id) || "");
      var href = src && safeUrl(src.url);
      li.appendChild(href ? externalLink(href, title) : document.createTextNode(title));
      ol.appendChild(li);
    });
    box.appendChild(h);
    box.appendChild(ol);
    view.bubble.appendChild(box);
    view.sources = box;
  }

  function errorMessage(status, code, serverMessage, retryAfter) {
    if (status === 429) {
      return retryAfter ? t("err429", { wait: t.duration(retryAfter) }) : t("err429NoWait");
    }
    if (status === 503) {
      return retryAfter ? t("err503", { wait: t.duration(retryAfter) }) : t("err503NoWait");
    }
    if (status === 413 || code === "payload_too_large") return t("tooLong", { n: MAX_QUESTION_CHARS });
    if (status === 400 || status === 415) return t("errBadRequest", { detail: serverMessage || code || status });
    return t("errServer");
  }

  // Shows an error under the answer with a retry button; a Retry-After delay disables the
  // button and counts down, so a click cannot arrive before the server will accept it.
  function showError(exchange, text, retryAfter) {
    var view = exchange.view;
    var box = el("div", "alert");
    box.setAttribute("role", "alert");
    box.appendChild(el("p", null, text));
    var btn = el("button", "retry", t("retry"));
    btn.type = "button";
    btn.addEventListener("click", function () { retry(exchange); });
    box.appendChild(el("p")).appendChild(btn);
    view.bubble.appendChild(box);
    if (retryAfter && retryAfter > 0) {
      var left = Math.ceil(retryAfter);
      btn.disabled = true;
      btn.textContent = t("retryIn", { wait: t.duration(left) });
      var timer = window.setInterval(function () {
        left -= 1;
        if (left <= 0 || !btn.isConnected) {
          window.clearInterval(timer);
          btn.disabled = false;
          btn.textContent = t("retry");
        } else {
          btn.textContent = t("retryIn", { wait: t.duration(left) });
        }
      }, 1000);
    }
  }

  function addNote(view, text) {
    view.bubble.appendChild(el("p", "note", text));
  }

  function finishView(view) {
    view.bubble.classList.remove("streaming");
    var thinking = view.answer.querySelector(".thinking");
    if (thinking) thinking.remove();
  }

  function retry(exchange) {
    if (current) return;
    exchange.view.wrap.remove();
    run(exchange);
    input.focus();
  }

  function ask(question) {
    exchangeCount += 1;
    var exchange = {
      id: exchangeCount,
      question: question,
      history: historyForRequest(question),
      userEl: addUserMessage(question)
    };
    run(exchange);
  }

  async function run(exchange) {
    var view = addBotMessage(exchange.id);
    exchange.view = view;
    view.sources = null;
    var controller = new AbortController();
    current = { exchange: exchange, controller: controller };
    setStreaming(true);
    scrollToBottom();
    announce(t("thinking"));

    var text = "";
    var done = false;
    var failed = false;
    var citeCount = 0;
    var ctx = {
      citeHref: function (n) {
        return n >= 1 && n <= citeCount ? "#src-" + exchange.id + "-" + n : null;
      }
    };

    function paint() {
      var stick = nearBottom();
      renderMarkdown(text, view.answer, ctx);
      if (stick) scrollToBottom();
    }

    var body = { question: exchange.question, session_id: sessionId };
    if (exchange.history.length > 0) body.history = exchange.history;

    try {
      var res = await fetch(STREAM_URL, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
        body: JSON.stringify(body),
        signal: controller.signal,
        cache: "no-store"
      });

      if (!res.ok) {
        var code = null;
        var message = null;
        try {
          var err = await res.json();
          if (err && err.error) {
            code = err.error.code;
            message = err.error.message;
          }
        } catch (e) { /* a proxy's HTML error page: the status says enough */ }
        var wait = parseRetryAfter(res.headers.get("Retry-After"));
        finishView(view);
        failed = true;
        showError(exchange, errorMessage(res.status, code, message, wait), wait);
        return;
      }

      var type = res.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") === 0) {
        // Something between us and the origin answered the non-streaming way.
        var full = await res.json();
        renderMarks(view, full);
        citeCount = (full.sources || []).length;
        renderSources(view, full.sources, exchange.id);
        text = String(full.answer || "");
        paint();
        done = true;
      } else {
        var parser = new SseParser(function (event, data) {
          var payload;
          try {
            payload = JSON.parse(data);
          } catch (e) {
            return;
          }
          if (event === "meta") {
            renderMarks(view, payload);
            citeCount = Array.isArray(payload.sources) ? payload.sources.length : 0;
            renderSources(view, payload.sources, exchange.id);
          } else if (event === "token") {
            if (text === "") announce(t("answering"));
            text += String(payload.text || "");
          } else if (event === "done") {
            done = true;
          } else if (event === "error") {
            failed = true;
            finishView(view);
            paint();
            showError(exchange, t("errStream"), null);
          }
        });
        var reader = res.body.getReader();
        var decoder = new TextDecoder();
        for (;;) {
          var chunk = await reader.read();
          if (chunk.done) break;
          var before = text;
          parser.feed(decoder.decode(chunk.value, { stream: true }));
          // One repaint per network chunk, however many tokens it carried.
          if (text !== before && !failed) paint();
          if (failed) {
            reader.cancel().catch(function () {});
            break;
          }
        }
        parser.feed(decoder.decode());
      }

      if (failed) return;
      finishView(view);
      paint();
      if (done) {
        if (text.trim() !== "") {
          history.push({ role: "user", content: exchange.question });
          history.push({ role: "assistant", content: text });
        }
        announce(t("answered"));
      } else {
        // The connection ended without `done`: never pass a cut answer off as complete.
        showError(exchange, t("truncated"), null);
      }
    } catch (e) {
      finishView(view);
      if (text) paint();
      if (controller.signal.aborted) {
        addNote(view, t("stopped"));
        announce(t("stopped"));
      } else {
        showError(exchange, t("errNetwork"), null);
      }
    } finally {
      if (current && current.controller === controller) current = null;
      setStreaming(false);
      if (nearBottom()) scrollToBottom();
    }
  }

  function stop() {
    if (current) current.controller.abort();
  }

  function newConversation() {
    stop();
    history = [];
    sessionId = newSessionId();
    messages.querySelectorAll(".msg:not(.welcome)").forEach(function (node) { node.remove(); });
    input.value = "";
    autosize();
    input.focus();
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = input.scrollHeight + 2 + "px";
  }

  function submit() {
    var question = input.value.trim();
    if (question === "" || current) return;
    if (question.length > MAX_QUESTION_CHARS) {
      announce(t("tooLong", { n: MAX_QUESTION_CHARS }));
      return;
    }
    input.value = "";
    autosize();
    ask(question);
  }

  function init() {
    messages = document.getElementById("messages");
    form = document.getElementById("composer");
    input = document.getElementById("question");
    sendBtn = document.getElementById("send");
    stopBtn = document.getElementById("stop");
    newBtn = document.getElementById("new-chat");
    status = document.getElementById("status");

    var params = new URLSearchParams(window.location.search);
    var embedded = params.get("embed") === "1";
    if (embedded) document.body.classList.add("embed");
    localize();

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      submit();
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        submit();
      }
    });
    input.addEventListener("input", autosize);
    stopBtn.addEventListener("click", function () {
      stop();
      input.focus();
    });
    newBtn.addEventListener("click", newConversation);
    document.addEventListener("keydown", function (e) {
      if (e.key !== "Escape") return;
      if (current) {
        e.preventDefault();
        stop();
        input.focus();
      } else if (embedded && window.parent !== window) {
        // Lets the widget close its panel and give focus back to its button.
        window.parent.postMessage({ type: "libriassist:close" }, "*");
      }
    });

    if (embedded) {
      window.addEventListener("message", function (e) {
        if (e.source === window.parent && e.data && e.data.type === "libriassist:focus") input.focus();
      });
    } else {
      input.focus();
    }
  }

  // Exposed for the browser tests, which check the parser and the renderer directly.
  window.LibriAssist = {
    SseParser: SseParser,
    renderMarkdown: renderMarkdown,
    safeUrl: safeUrl,
    parseRetryAfter: parseRetryAfter
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
