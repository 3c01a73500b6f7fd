// Embeddable chat button: `<script src="https://shop.example/widget.js" defer></script>`.
//
// The chat itself runs in an iframe served by LibriAssist, so the host page's CSS and scripts
// cannot reach the conversation and ours cannot break the host page. Optional attributes on
// the script tag: data-lang="fr|en" (default: the host page's lang), data-position="left".
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.__libriassistWidget) return;
  window.__libriassistWidget = true;

  var base = new URL(".", script.src);
  var origin = base.origin;
  var hostLang = (script.getAttribute("data-lang") || document.documentElement.lang || navigator.language || "fr")
    .toLowerCase().slice(0, 2);
  var lang = hostLang === "en" ? "en" : "fr";
  var left = script.getAttribute("data-position") === "left";
  var TEXT = {
    fr: { open: "Poser une question à la librairie", close: "Fermer la conversation", title: "LibriAssist" },
    en: { open: "Ask the bookstore a question", close: "Close the conversation", title: "LibriAssist" }
  }[lang];

  // Prefixed class names and one injected stylesheet: nothing leaks into the host's styles.
  var css = [
    ".libriassist-btn{position:fixed;bottom:20px;" + (left ? "left" : "right") + ":20px;z-index:2147483000;",
    "width:60px;height:60px;border-radius:50%;border:0;cursor:pointer;background:#7a2e1f;color:#fff;",
    "box-shadow:0 4px 14px rgba(0,0,0,.3);display:flex;align-items:center;justify-content:center;padding:0}",
    ".libriassist-btn:focus-visible{outline:3px solid #1a5fb4;outline-offset:3px}",
    ".libriassist-btn svg{width:28px;height:28px}",
    ".libriassist-panel{position:fixed;bottom:92px;" + (left ? "left" : "right") + ":20px;z-index:2147483000;",
    "width:min(400px,calc(100vw - 40px));height:min(620px,calc(100vh - 120px));border-radius:14px;overflow:hidden;",
    "box-shadow:0 10px 40px rgba(0,0,0,.35);background:#f7f3ec;display:flex;flex-direction:column;",
    "transition:opacity .15s ease,transform .15s ease}",
    ".libriassist-panel[hidden]{display:none}",
    ".libriassist-bar{display:flex;justify-content:space-between;align-items:center;padding:4px 6px 4px 14px;",
    "background:#7a2e1f;color:#fff;font:600 15px/1.4 system-ui,sans-serif}",
    ".libriassist-close{background:transparent;border:0;color:#fff;font-size:22px;line-height:1;width:44px;height:44px;cursor:pointer;border-radius:8px}",
    ".libriassist-close:focus-visible{outline:3px solid #fff;outline-offset:-4px}",
    ".libriassist-frame{flex:1;border:0;width:100%;background:transparent}",
    "@media (max-width:600px){.libriassist-panel{inset:0;width:100%;height:100%;border-radius:0;bottom:0;left:0;right:0}}",
    "@media (prefers-reduced-motion:reduce){.libriassist-panel{transition:none}}",
    "@media (prefers-color-scheme:dark){.libriassist-panel{background:#171411}.libriassist-btn,.libriassist-bar{background:#5e2a1d}}"
  ].join("");

  var style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);

  var svgNs = "http://www.w3.org/2000/svg";
  function icon() {
    var svg = document.createElementNS(svgNs, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(svgNs, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6v2h2V9H7zm4 0v2h2V9h-2zm4 0v2h2V9h-2z");
    svg.appendChild(path);
    return svg;
  }

  var button = document.createElement("button");
  button.type = "button";
  button.className = "libriassist-btn";
  button.setAttribute("aria-label", TEXT.open);
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "libriassist-panel");
  button.appendChild(icon());

  var panel = document.createElement("div");
  panel.id = "libriassist-panel";
  panel.className = "libriassist-panel";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", TEXT.title);
  panel.hidden = true;

  var bar = document.createElement("div");
  bar.className = "libriassist-bar";
  var title = document.createElement("span");
  title.textContent = TEXT.title;
  var close = document.createElement("button");
  close.type = "button";
  close.className = "libriassist-close";
  close.setAttribute("aria-label", TEXT.close);
  close.textContent = "×";
  bar.appendChild(title);
  bar.appendChild(close);
  panel.appendChild(bar);

  var frame = null;

  // The iframe loads on first open only: most visitors never ask, and should not pay for it.
  function ensureFrame() {
    if (frame) return frame;
    frame = document.createElement("iframe");
    frame.className = "libriassist-frame";
    frame.title = TEXT.title;
    frame.src = new URL("?embed=1&lang=" + lang, base).href;
    panel.appendChild(frame);
    return frame;
  }

  function open() {
    ensureFrame();
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    // Put the keyboard where the typing happens, once the chat page has loaded. The page is
    // on another origin, so it is asked to move the focus to its own field.
    var focusInside = function () {
      frame.focus();
      frame.contentWindow.postMessage({ type: "libriassist:focus" }, origin);
    };
    if (frame.dataset.loaded) focusInside();
    else frame.addEventListener("load", function once() {
      frame.removeEventListener("load", once);
      frame.dataset.loaded = "1";
      if (!panel.hidden) focusInside();
    });
  }

  function hide() {
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    button.focus();
  }

  button.addEventListener("click", function () {
    if (panel.hidden) open();
    else hide();
  });
  close.addEventListener("click", hide);
  panel.addEventListener("keydown", function (e) {
    if (e.key === "Escape") hide();
  });
  window.addEventListener("message", function (e) {
    if (e.origin !== origin || !frame || e.source !== frame.contentWindow) return;
    if (e.data && e.data.type === "libriassist:close") hide();
  });

  function mount() {
    // Button first, so Tab goes from it straight into the opened panel.
    document.body.appendChild(button);
    document.body.appendChild(panel);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
