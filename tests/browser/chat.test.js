// The chat page in headless Chromium against the real origin and the Ollama simulator.
//
// Responses are substituted with page.route only where the stack cannot be made to produce
// them on demand (a 429, a 503, a cut stream, hostile document titles); the page's handling
// of those is what is under test, and the substitutes carry the contract's exact shapes.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const { ARTIFACTS, ROOT, startStack, launchBrowser, parseSse, eventStreamText, sseBody, sleep } = require("./harness");

const STREAM = "**/api/v1/chat/stream";
const UPDATE_DOCS = process.env.UPDATE_SCREENSHOTS === "1";

let stack;
let browser;

before(async () => {
  stack = await startStack();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (stack) await stack.stop();
});

/** A fresh page on the chat, failing the test on any script error or CSP violation. */
async function openChat(t, query = "", baseUrl = stack.baseUrl) {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    // Chromium logs every non-2xx response; the error tests cause those on purpose.
    if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) errors.push(m.text());
  });
  t.after(async () => {
    await page.close();
    assert.deepEqual(errors, [], "script errors on the page");
  });
  const response = await page.goto(`${baseUrl}/${query}`);
  assert.equal(response.status(), 200);
  await page.waitForFunction(() => window.LibriAssist && document.getElementById("question"));
  return page;
}

async function ask(page, question) {
  await page.fill("#question", question);
  await page.press("#question", "Enter");
}

/** Waits until the latest answer stopped streaming (done, stopped or failed). */
async function settled(page, timeout = 20000) {
  await page.waitForFunction(
    () => {
      const all = document.querySelectorAll(".msg.bot:not(.welcome) .bubble");
      const last = all[all.length - 1];
      return last && !last.classList.contains("streaming") && document.getElementById("stop").hidden;
    },
    null,
    { timeout },
  );
}

const lastBubble = (page) => page.locator(".msg.bot:not(.welcome) .bubble").last();

/** Asks and returns the request body and the SSE events of the answer. */
async function askAndRead(page, question) {
  const requestP = page.waitForRequest((r) => r.url().endsWith("/api/v1/chat/stream"));
  const responseP = page.waitForResponse((r) => r.url().endsWith("/api/v1/chat/stream"));
  await ask(page, question);
  const request = await requestP;
  const response = await responseP;
  await settled(page);
  const events = parseSse(await eventStreamText(response));
  return { body: request.postDataJSON(), response, events };
}

const answerOf = (events) => events.filter((e) => e.event === "token").map((e) => e.data.text).join("");

function shotPath(name) {
  return path.join(ARTIFACTS, name);
}

describe("chat page", () => {
  it("is served in French with hashed, immutable assets", async (t) => {
    const assets = [];
    const page = await browser.context.newPage();
    t.after(() => page.close());
    page.on("response", (r) => {
      if (r.url().includes("/assets/")) assets.push(r);
    });
    const res = await page.goto(`${stack.baseUrl}/`);
    assert.equal(res.headers()["cache-control"], "no-cache");
    assert.match(res.headers()["content-type"], /^text\/html/);
    await page.waitForFunction(() => window.LibriAssist);
    assert.equal(await page.getAttribute("html", "lang"), "fr");
    assert.equal(await page.textContent("#send"), "Envoyer");
    assert.equal(assets.length, 3);
    for (const r of assets) {
      assert.match(r.url(), /\/assets\/(app|i18n)\.[0-9a-f]{16}\.(js|css)$/);
      assert.equal(r.status(), 200);
      assert.equal(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    }
    // The field is labelled, and the conversation is a polite live region.
    await page.getByLabel("Votre question").waitFor();
    assert.equal(await page.getAttribute("#messages", "aria-live"), "polite");
    assert.equal(await page.getAttribute("#messages", "role"), "log");
    // A visitor lands ready to type.
    assert.equal(await page.evaluate(() => document.activeElement.id), "question");
  });

  it("speaks English with ?lang=en or an English browser", async (t) => {
    const page = await openChat(t, "?lang=en");
    assert.equal(await page.getAttribute("html", "lang"), "en");
    assert.equal(await page.textContent("#send"), "Send");
    await page.getByLabel("Your question").waitFor();

    const other = await browser.context.newPage();
    t.after(() => other.close());
    await other.addInitScript(() => {
      Object.defineProperty(navigator, "languages", { get: () => ["en-GB", "en"] });
    });
    await other.goto(`${stack.baseUrl}/`);
    await other.waitForFunction(() => window.LibriAssist);
    assert.equal(await other.textContent("#send"), "Send");
    const choices = await other.evaluate(() => {
      const c = window.LibriAssistI18n.chooseLanguage;
      return [c("", ["de-DE", "en-US"]), c("", ["de-DE"]), c("?lang=fr", ["en"]), c("?lang=xx", ["en"]), c("", [])];
    });
    assert.deepEqual(choices, ["en", "fr", "fr", "en", "fr"]);
  });

  it("streams the answer progressively and shows its sources", async (t) => {
    const page = await openChat(t);
    // Record every change of the answer's text with its time, as a reader would see it.
    await page.evaluate(() => {
      window.__updates = [];
      new MutationObserver(() => {
        const answers = document.querySelectorAll(".msg.bot:not(.welcome) .answer");
        const last = answers[answers.length - 1];
        if (!last || last.querySelector(".thinking")) return;
        const len = last.textContent.length;
        const prev = window.__updates[window.__updates.length - 1];
        if (!prev || prev.len !== len) window.__updates.push({ len, at: performance.now() });
      }).observe(document.getElementById("messages"), { subtree: true, childList: true, characterData: true });
    });
    const { body, response, events } = await askAndRead(page, "Quels sont vos horaires d'ouverture ?");
    assert.equal(response.status(), 200);
    assert.match(response.headers()["content-type"], /^text\/event-stream/);
    assert.equal(body.question, "Quels sont vos horaires d'ouverture ?");
    assert.equal(body.history, undefined, "a first question has no history");
    assert.equal(events[0].event, "meta");
    assert.equal(events[events.length - 1].event, "done");

    const updates = (await page.evaluate(() => window.__updates)).filter((u) => u.len > 0);
    t.diagnostic(`${updates.length} renders over ${Math.round(updates[updates.length - 1].at - updates[0].at)} ms`);
    assert.ok(updates.length >= 5, `only ${updates.length} renders: the answer did not stream`);
    assert.ok(updates[updates.length - 1].at - updates[0].at >= 300, "all text arrived at once");
    for (let i = 1; i < updates.length; i++) assert.ok(updates[i].len > updates[i - 1].len, "text only grows");

    // What is shown is the whole streamed answer, rendered.
    const streamed = answerOf(events);
    assert.ok(streamed.trim().length > 0);
    const expected = await page.evaluate((md) => {
      const div = document.createElement("div");
      window.LibriAssist.renderMarkdown(md, div, {});
      return div.textContent;
    }, streamed);
    assert.equal(await lastBubble(page).locator(".answer").textContent(), expected);
    assert.equal(await page.getAttribute("#messages", "aria-busy"), "false");

    const meta = events[0].data;
    const items = lastBubble(page).locator(".sources li");
    assert.equal(await items.count(), meta.sources.length);
    t.diagnostic(`the origin returned ${meta.sources.length} sources`);
    for (let i = 0; i < meta.sources.length; i++) {
      assert.equal((await items.nth(i).textContent()).trim(), meta.sources[i].title);
      if (/^https?:/.test(meta.sources[i].url || "")) {
        assert.equal(await items.nth(i).locator("a").getAttribute("href"), new URL(meta.sources[i].url).href);
      }
    }
    // A live answer carries no cache mark; a replayed one does.
    assert.equal(await lastBubble(page).getAttribute("data-cache"), meta.cache);
    assert.equal(await lastBubble(page).locator(".mark.cache").count(), meta.cache === "miss" ? 0 : 1);
    await page.screenshot({ path: shotPath("stream-desktop.png") });
  });

  it("sends the conversation with a follow-up, and forgets it on a new conversation", async (t) => {
    const page = await openChat(t);
    const first = await askAndRead(page, "Livrez-vous en Belgique ?");
    const answer = answerOf(first.events);
    assert.ok(answer.trim().length > 0);

    const second = await askAndRead(page, "Et en Suisse ?");
    assert.equal(second.body.question, "Et en Suisse ?");
    assert.deepEqual(second.body.history, [
      { role: "user", content: "Livrez-vous en Belgique ?" },
      { role: "assistant", content: answer },
    ]);
    assert.equal(second.body.session_id, first.body.session_id);
    assert.equal(second.events[second.events.length - 1].event, "done");

    await page.click("#new-chat");
    assert.equal(await page.locator(".msg.user").count(), 0);
    assert.equal(await page.evaluate(() => document.activeElement.id), "question");
    const third = await askAndRead(page, "Avez-vous des cartes cadeaux ?");
    assert.equal(third.body.history, undefined);
    assert.notEqual(third.body.session_id, first.body.session_id);
  });

  it("stops a stream mid-way with the stop button", async (t) => {
    const page = await openChat(t);
    await page.evaluate(() => {
      window.__busy = [];
      new MutationObserver(() => window.__busy.push(document.getElementById("messages").getAttribute("aria-busy")))
        .observe(document.getElementById("messages"), { attributes: true, attributeFilter: ["aria-busy"] });
    });
    const requestP = page.waitForRequest((r) => r.url().endsWith("/api/v1/chat/stream"));
    await ask(page, "Pouvez-vous me parler de vos rencontres d'auteurs ?");
    const request = await requestP;
    const answer = lastBubble(page).locator(".answer");
    await page.waitForFunction(() => {
      const a = document.querySelectorAll(".msg.bot:not(.welcome) .answer");
      const last = a[a.length - 1];
      return last && !last.querySelector(".thinking") && last.textContent.length > 0;
    });
    assert.equal(await page.isVisible("#stop"), true);
    assert.equal(await page.isDisabled("#send"), true);
    const failed = new Promise((resolve) => page.once("requestfailed", resolve));
    await page.click("#stop");
    assert.equal(await failed, request, "the stream's request was aborted");
    await settled(page);
    const atStop = await answer.textContent();
    await sleep(1000);
    assert.equal(await answer.textContent(), atStop, "text kept arriving after stop");
    assert.ok(atStop.length > 0);
    assert.equal(await lastBubble(page).locator(".note").textContent(), "Réponse interrompue.");
    assert.equal(await page.isHidden("#stop"), true);
    assert.equal(await page.isEnabled("#send"), true);
    assert.equal(await page.evaluate(() => document.activeElement.id), "question", "focus returns to the field");
    assert.deepEqual(await page.evaluate(() => window.__busy), ["true", "false"]);

    // A cut answer is not context for the next question.
    const next = await askAndRead(page, "Quand a lieu la prochaine ?");
    assert.equal(next.body.history, undefined);
  });

  it("stops with Escape and works with the keyboard alone", async (t) => {
    const page = await openChat(t);
    await page.keyboard.type("Première ligne");
    await page.keyboard.press("Shift+Enter");
    await page.keyboard.type("seconde ligne");
    assert.equal(await page.inputValue("#question"), "Première ligne\nseconde ligne");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.id), "send");
    await page.keyboard.press("Enter"); // the focused Send button
    await page.waitForFunction(() => {
      const a = document.querySelectorAll(".msg.bot:not(.welcome) .answer");
      return a.length && !a[a.length - 1].querySelector(".thinking");
    });
    assert.equal(await page.evaluate(() => document.activeElement.id), "question", "focus left the disabled button");
    await page.keyboard.press("Escape");
    await settled(page);
    assert.equal(await lastBubble(page).locator(".note").count(), 1);
    assert.equal(await page.locator(".msg.user .bubble").last().textContent(), "Première ligne\nseconde ligne");
    // Shift+Tab from the field walks back through the conversation's links to the top.
    let reached = false;
    for (let i = 0; i < 30 && !reached; i++) {
      await page.keyboard.press("Shift+Tab");
      reached = (await page.evaluate(() => document.activeElement.id)) === "new-chat";
    }
    assert.ok(reached, "the header's button is reachable backwards from the field");
  });

  it("explains a 429 with the wait from Retry-After, then retries", async (t) => {
    const page = await openChat(t);
    await page.route(
      STREAM,
      (route) =>
        route.fulfill({
          status: 429,
          headers: { "content-type": "application/json", "retry-after": "2" },
          body: JSON.stringify({ error: { code: "rate_limited", message: "too many requests; retry in 2 s" } }),
        }),
      { times: 1 },
    );
    await ask(page, "Avez-vous le dernier prix Goncourt ?");
    const alert = lastBubble(page).locator("[role=alert]");
    await alert.waitFor();
    assert.match(await alert.textContent(), /patienter 2\ssecondes avant de réessayer/);
    const retry = alert.locator("button.retry");
    assert.equal(await retry.isDisabled(), true, "retry is held back for the server's wait");
    assert.match(await retry.textContent(), /Réessayer \(\d\ssecondes?\)/);
    await page.screenshot({ path: shotPath("rate-limited.png") });
    await retry.waitFor({ state: "visible" });
    await page.waitForFunction(() => !document.querySelector(".retry").disabled, null, { timeout: 5000 });
    assert.equal(await retry.textContent(), "Réessayer");

    const responseP = page.waitForResponse((r) => r.url().endsWith("/api/v1/chat/stream"));
    await retry.click();
    const response = await responseP;
    assert.equal(response.status(), 200, "the retry reached the origin");
    await settled(page);
    assert.equal(await page.locator(".msg.user").count(), 1, "a retry does not repeat the question");
    assert.equal(await lastBubble(page).locator("[role=alert]").count(), 0);
    assert.ok((await lastBubble(page).locator(".answer").textContent()).length > 0);
  });

  it("shows the origin's own 503 when every backend slot is taken, then retries", async (t) => {
    if (process.env.LIBRIASSIST_BASE_URL) return t.skip("needs an origin of its own");
    // One slot and a short wait in line: a second question while the first streams is refused.
    const busy = await startStack({
      name: "busy-",
      originEnv: { LIBRIASSIST_BACKEND_SLOTS: "1", LIBRIASSIST_QUEUE_TIMEOUT_MS: "300" },
    });
    t.after(() => busy.stop());
    const first = await openChat(t, "", busy.baseUrl);
    const second = await openChat(t, "", busy.baseUrl);

    const firstDone = first.waitForResponse((r) => r.url().endsWith("/api/v1/chat/stream"));
    await ask(first, "Vendez-vous des livres d'occasion ?");
    await first.waitForFunction(() => {
      const a = document.querySelector(".msg.bot:not(.welcome) .answer");
      return a && !a.querySelector(".thinking") && a.textContent.length > 0;
    });
    const refusedP = second.waitForResponse((r) => r.url().endsWith("/api/v1/chat/stream"));
    await ask(second, "Rachetez-vous les livres ?");
    const refused = await refusedP;
    assert.equal(refused.status(), 503);
    const wait = Number(refused.headers()["retry-after"]);
    assert.ok(wait > 0, "the origin says how long to wait");
    const alert = lastBubble(second).locator("[role=alert]");
    await alert.waitFor();
    assert.match(await alert.textContent(), new RegExp(`très demandé.*Réessayez dans ${wait}\\ssecondes`));
    assert.equal(await alert.locator("button.retry").isDisabled(), true);

    await firstDone;
    await settled(first);
    await second.waitForFunction(() => !document.querySelector(".retry").disabled, null, { timeout: (wait + 2) * 1000 });
    await alert.locator("button.retry").click();
    await settled(second);
    assert.equal(await lastBubble(second).locator("[role=alert]").count(), 0);
    assert.ok((await lastBubble(second).locator(".answer").textContent()).length > 0);
  });

  it("explains 503, network failures, cut streams and stream errors", async (t) => {
    const page = await openChat(t);

    await page.route(STREAM, (route) =>
      route.fulfill({
        status: 503,
        headers: { "content-type": "application/json", "retry-after": "30" },
        body: JSON.stringify({ error: { code: "no_backend", message: "no healthy backend" } }),
      }), { times: 1 });
    await ask(page, "Question A");
    await lastBubble(page).locator("[role=alert]").waitFor();
    assert.match(await lastBubble(page).locator("[role=alert]").textContent(), /très demandé.*Réessayez dans 30\ssecondes/);

    await page.route(STREAM, (route) => route.abort("connectionrefused"), { times: 1 });
    await ask(page, "Question B");
    await lastBubble(page).locator("[role=alert]").waitFor();
    assert.match(await lastBubble(page).locator("[role=alert]").textContent(), /Connexion impossible/);
    // Nothing held back a network retry: it goes straight to the real origin and succeeds.
    await lastBubble(page).locator("button.retry").click();
    await settled(page);
    assert.equal(await lastBubble(page).locator("[role=alert]").count(), 0);

    const meta = { sources: [], cache: "miss", model: "m", mode: "generated" };
    await page.route(STREAM, (route) =>
      route.fulfill({
        status: 200,
        headers: { "content-type": "text/event-stream" },
        body: sseBody([["meta", meta], ["token", { text: "Le début " }], ["token", { text: "de la réponse" }]]),
      }), { times: 1 });
    await ask(page, "Question C");
    await settled(page);
    assert.match(await lastBubble(page).textContent(), /Le début de la réponse/);
    assert.match(await lastBubble(page).locator("[role=alert]").textContent(), /coupée avant la fin/);

    await page.route(STREAM, (route) =>
      route.fulfill({
        status: 200,
        headers: { "content-type": "text/event-stream" },
        body: sseBody([
          ["meta", meta],
          ["token", { text: "Partiel" }],
          ["error", { code: "backend_failed", message: "the backend closed the stream" }],
        ]),
      }), { times: 1 });
    await ask(page, "Question D");
    await settled(page);
    assert.match(await lastBubble(page).locator("[role=alert]").textContent(), /interrompue à cause d’une erreur/);

    // Failed exchanges never become history.
    const next = await askAndRead(page, "Question E");
    const turns = next.body.history || [];
    assert.ok(!turns.some((turn) => /Question [ACD]|Partiel|Le début/.test(turn.content)), JSON.stringify(turns));
  });

  it("marks answers from the cache and from the extractive mode", async (t) => {
    const page = await openChat(t);
    const sources = [{ id: "faq#3", title: "Retours et échanges", url: "https://librairie.example/retours", score: 0.8 }];
    for (const [cache, mode, marks] of [
      ["exact", "generated", ["Réponse déjà donnée"]],
      ["semantic", "generated", ["Réponse à une question proche"]],
      ["miss", "extractive", ["Extraits de nos documents"]],
      ["miss", "generated", []],
    ]) {
      await page.route(STREAM, (route) =>
        route.fulfill({
          status: 200,
          headers: { "content-type": "text/event-stream" },
          body: sseBody([
            ["meta", { sources, cache, model: "m", mode }],
            ["token", { text: "Vous avez 30 jours pour un retour [1]." }],
            ["done", { timings: { total_ms: 3 } }],
          ]),
        }), { times: 1 });
      await ask(page, `Retours ? (${cache}, ${mode})`);
      await settled(page);
      const shown = await lastBubble(page).locator(".mark").allTextContents();
      assert.deepEqual(shown, marks, `${cache}/${mode}`);
      assert.equal(await lastBubble(page).getAttribute("data-mode"), mode);
      const note = lastBubble(page).locator(".mark-note");
      if (mode === "extractive") assert.match(await note.textContent(), /passages les plus utiles/);
      else assert.equal(await note.count(), 0);
    }
    await page.screenshot({ path: shotPath("marks.png") });

    // The real origin: asking the same question twice may be answered from its cache; the
    // mark must then say so, and only then.
    const q = "Quels moyens de paiement acceptez-vous ?";
    await askAndRead(page, q);
    await page.click("#new-chat");
    const again = await askAndRead(page, q);
    const cache = again.events[0].data.cache;
    t.diagnostic(`second identical question: cache=${cache}`);
    assert.equal(await lastBubble(page).locator(".mark.cache").count(), cache === "miss" ? 0 : 1);
  });

  it("renders hostile model and document text as text", async (t) => {
    const page = await openChat(t);
    await page.evaluate(() => {
      window.__pwned = 0;
    });
    const sources = [
      { id: "doc-1", title: 'Livraison <img src=x onerror="window.__pwned=1">', url: "https://librairie.example/livraison", score: 0.9 },
      { id: "doc-2", title: "<script>window.__pwned=2</script>Retours", url: "javascript:window.__pwned=3", score: 0.7 },
      { id: "doc-3", title: "Données", url: "data:text/html,<script>window.__pwned=4</script>", score: 0.5 },
    ];
    const tokens = [
      "Voici <script>window.__pwned=5</script> ",
      "la **réponse** [1] ",
      '<img src=x onerror="window.__pwned=6"> ',
      "[cliquez](javascript:window.__pwned=7) ",
      '<a href="javascript:window.__pwned=8">lien</a> ',
      "et [notre site](https://librairie.example/ok).",
    ];
    await page.route(STREAM, (route) =>
      route.fulfill({
        status: 200,
        headers: { "content-type": "text/event-stream" },
        body: sseBody([
          ["meta", { sources, cache: "miss", model: "m", mode: "generated" }],
          ...tokens.map((text) => ["token", { text }]),
          ["done", { timings: { total_ms: 1 } }],
        ]),
      }), { times: 1 });
    await ask(page, "Test d'injection");
    await settled(page);
    await sleep(300); // an injected onerror would have fired by now

    const bubble = lastBubble(page);
    assert.equal(await page.locator("#messages script, #messages img, #messages iframe, #messages object").count(), 0);
    assert.equal(await page.locator('a[href^="javascript:"], a[href^="data:"]').count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), 0);
    const text = await bubble.locator(".answer").textContent();
    assert.ok(text.includes("<script>window.__pwned=5</script>"), text);
    assert.ok(text.includes('<img src=x onerror="window.__pwned=6">'), text);
    assert.ok(text.includes('<a href="javascript:window.__pwned=8">lien</a>'), text);
    assert.ok(text.includes("cliquez") && !text.includes("javascript:window.__pwned=7"), text);
    // Markdown still works around the hostile parts.
    assert.equal(await bubble.locator(".answer strong").textContent(), "réponse");
    assert.equal(await bubble.locator(".answer a.cite").getAttribute("href"), "#src-1-1");
    assert.equal(await bubble.locator('.answer a[href="https://librairie.example/ok"]').textContent(), "notre site");

    const items = bubble.locator(".sources li");
    assert.equal(await items.nth(0).textContent(), sources[0].title);
    assert.equal(await items.nth(0).locator("a").getAttribute("href"), "https://librairie.example/livraison");
    assert.equal(await items.nth(0).locator("a").getAttribute("rel"), "noopener noreferrer nofollow");
    assert.equal(await items.nth(1).textContent(), sources[1].title);
    assert.equal(await items.nth(1).locator("a").count(), 0, "a javascript: source is not a link");
    assert.equal(await items.nth(2).locator("a").count(), 0, "a data: source is not a link");
    await page.screenshot({ path: shotPath("injection.png") });
  });

  it("parses SSE split anywhere and renders markdown safely", async (t) => {
    const page = await openChat(t);
    const parsed = await page.evaluate(() => {
      const wire = 'event: meta\r\ndata: {"a":1}\r\n\r\n: keep-alive\n\nevent: token\ndata: x\ndata:y\n\ndata: plain\r\rretry: 5\nevent: done\ndata: {}\n\n';
      const out = [];
      const p = new window.LibriAssist.SseParser((event, data) => out.push([event, data]));
      for (const ch of wire) p.feed(ch); // the worst chunking a network can do
      return out;
    });
    assert.deepEqual(parsed, [["meta", '{"a":1}'], ["token", "x\ny"], ["message", "plain"], ["done", "{}"]]);

    const html = await page.evaluate(() => {
      const cases = [
        "Un **gras** et *italique*, `code`.",
        "- un\n- deux [2]\n  suite",
        "3. trois\n4. quatre",
        "## Titre\nligne 1\nligne 2\n\nautre paragraphe",
        "Voir https://librairie.example/page. Fin",
        "[a](http://ok.example/x_(y)) [b](ftp://no.example) [c](//evil.example)",
        "> citation\n> suite",
        "[9] n'est pas une source",
      ];
      return cases.map((md) => {
        const div = document.createElement("div");
        window.LibriAssist.renderMarkdown(md, div, { citeHref: (n) => (n <= 2 ? "#s" + n : null) });
        return div.innerHTML;
      });
    });
    assert.deepEqual(html, [
      "<p>Un <strong>gras</strong> et <em>italique</em>, <code>code</code>.</p>",
      '<ul><li>un</li><li>deux <a class="cite" href="#s2" aria-label="Voir la source 2">[2]</a> suite</li></ul>',
      '<ol start="3"><li>trois</li><li>quatre</li></ol>',
      "<p><strong>Titre</strong></p><p>ligne 1<br>ligne 2</p><p>autre paragraphe</p>",
      '<p>Voir <a href="https://librairie.example/page" target="_blank" rel="noopener noreferrer nofollow">https://librairie.example/page</a>. Fin</p>',
      '<p><a href="http://ok.example/x_(y)" target="_blank" rel="noopener noreferrer nofollow">a</a> b c</p>',
      "<blockquote>citation<br>suite</blockquote>",
      "<p>[9] n'est pas une source</p>",
    ]);
    const retryAfter = await page.evaluate(() => {
      const p = window.LibriAssist.parseRetryAfter;
      return [p("12"), p(null), p("soon"), p(new Date(Date.now() + 5000).toUTCString())];
    });
    assert.deepEqual(retryAfter.slice(0, 3), [12, null, null]);
    assert.ok(retryAfter[3] >= 4 && retryAfter[3] <= 6, String(retryAfter[3]));
  });

  it("respects reduced motion and dark mode", async (t) => {
    const page = await openChat(t);
    const caret = () =>
      page.evaluate(() => {
        const b = document.createElement("div");
        b.className = "bubble streaming";
        const a = document.createElement("div");
        a.className = "answer";
        b.appendChild(a);
        document.body.appendChild(b);
        const name = getComputedStyle(a, "::after").animationName;
        b.remove();
        return name;
      });
    await page.emulateMedia({ reducedMotion: "no-preference", colorScheme: "light" });
    assert.equal(await caret(), "blink");
    const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMedia({ reducedMotion: "reduce", colorScheme: "dark" });
    assert.equal(await caret(), "none");
    const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(light, dark);
    await ask(page, "Proposez-vous la livraison à domicile ?");
    await settled(page);
    await page.screenshot({ path: shotPath("chat-desktop-dark.png") });
  });

  it("adds a floating chat button with the widget script", async (t) => {
    // The bookstore's own site, on another origin, as a real server: Chromium refuses a page
    // of unknown address space (a page.route one) access to loopback.
    const site = http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(`<!doctype html><html lang="fr"><head><title>Librairie</title></head><body>
        <h1>Librairie des Quais</h1><a href="#" id="before">Accueil</a>
        <script src="${stack.baseUrl}/widget.js" defer></script></body></html>`);
    });
    await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
    t.after(() => new Promise((resolve) => {
      site.close(resolve);
      site.closeAllConnections(); // the browser's keep-alive would hold close() open
    }));
    const host = `http://127.0.0.1:${site.address().port}/`;
    const page = await browser.context.newPage();
    t.after(() => page.close());
    const widgetP = page.waitForResponse((r) => r.url().endsWith("/widget.js"));
    await page.goto(host);
    const widget = await widgetP;
    assert.equal(widget.headers()["cache-control"], "public, max-age=300");
    assert.match(widget.headers()["content-type"], /^text\/javascript/);

    const button = page.getByRole("button", { name: "Poser une question à la librairie" });
    await button.waitFor();
    assert.equal(await button.getAttribute("aria-expanded"), "false");
    assert.equal(await page.locator("iframe").count(), 0, "the chat loads only when opened");

    await page.focus("#before");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    assert.equal(await button.getAttribute("aria-expanded"), "true");
    const frameEl = page.locator("iframe.libriassist-frame");
    await frameEl.waitFor();
    assert.match(await frameEl.getAttribute("src"), /\/\?embed=1&lang=fr$/);
    const frame = page.frameLocator("iframe.libriassist-frame");
    await frame.locator("#question").waitFor();
    // Opening puts the keyboard in the chat's field: typing goes straight there.
    await frame.locator("#question:focus").waitFor();
    await page.keyboard.type("Faites-vous des paquets cadeaux ?");
    assert.equal(await frame.locator("#question").inputValue(), "Faites-vous des paquets cadeaux ?");
    await page.keyboard.press("Enter");
    await frame.locator(".msg.bot:not(.welcome) .bubble:not(.streaming)").waitFor({ timeout: 20000 });
    await page.screenshot({ path: shotPath("widget-open.png") });

    // Escape inside the chat closes the panel and gives the focus back to the button.
    await frame.locator("#question").press("Escape");
    await page.locator(".libriassist-panel").waitFor({ state: "hidden" });
    assert.equal(await button.getAttribute("aria-expanded"), "false");
    assert.equal(await page.evaluate(() => document.activeElement.className), "libriassist-btn");
  });

  it("looks right on a desktop and on a phone", async (t) => {
    const page = await openChat(t);
    await page.emulateMedia({ colorScheme: "light", reducedMotion: "reduce" });
    await askAndRead(page, "Quels sont vos horaires d'ouverture le dimanche ?");
    await askAndRead(page, "Et pendant les vacances scolaires ?");
    await page.locator("#question").blur();
    const shots = [
      ["chat-desktop.png", { width: 1280, height: 800 }],
      ["chat-phone.png", { width: 390, height: 844 }],
    ];
    for (const [name, viewport] of shots) {
      await page.setViewportSize(viewport);
      await sleep(100);
      // Nothing may stick out sideways on a phone.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${name}: ${overflow}px of horizontal overflow`);
      await page.screenshot({ path: shotPath(name) });
      if (UPDATE_DOCS) {
        fs.mkdirSync(path.join(ROOT, "docs", "screenshots"), { recursive: true });
        fs.copyFileSync(shotPath(name), path.join(ROOT, "docs", "screenshots", name));
      }
    }
  });
});
