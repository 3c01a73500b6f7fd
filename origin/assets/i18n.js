// Every string the chat page shows, in one place so a translator edits one file.
// French is the reference; English is there for visitors whose browser asks for it.
(function () {
  "use strict";

  var STRINGS = {
    fr: {
      title: "LibriAssist — vos questions à la librairie",
      heading: "LibriAssist",
      tagline: "Posez vos questions sur la librairie : horaires, commandes, livraisons, retours, cartes cadeaux…",
      messagesLabel: "Conversation",
      inputLabel: "Votre question",
      skipToInput: "Aller à la question",
      inputPlaceholder: "Par exemple : quels sont vos horaires le dimanche ?",
      inputHint: "Entrée pour envoyer, Maj + Entrée pour aller à la ligne.",
      send: "Envoyer",
      stop: "Arrêter",
      retry: "Réessayer",
      newConversation: "Nouvelle conversation",
      you: "Vous",
      bot: "LibriAssist",
      sources: "Sources",
      sourceCite: "Voir la source {n}",
      cacheMark: "Réponse déjà donnée",
      cacheMarkTitle: "Cette réponse a déjà été donnée à la même question : elle s’affiche plus vite.",
      semanticMark: "Réponse à une question proche",
      semanticMarkTitle: "Cette réponse a été donnée à une question très proche de la vôtre.",
      extractiveMark: "Extraits de nos documents",
      extractiveMarkTitle: "La rédaction des réponses est momentanément indisponible : voici les passages les plus utiles de nos documents.",
      stopped: "Réponse interrompue.",
      truncated: "La réponse a été coupée avant la fin.",
      thinking: "LibriAssist prépare sa réponse…",
      answering: "Réponse en cours…",
      answered: "Réponse reçue.",
      welcome: "Bonjour ! Je suis l’assistant de la librairie. Comment puis-je vous aider ?",
      err429: "Vous avez envoyé beaucoup de questions d’un coup. Merci de patienter {wait} avant de réessayer.",
      err429NoWait: "Vous avez envoyé beaucoup de questions d’un coup. Merci de patienter un instant avant de réessayer.",
      err503: "Le service est très demandé en ce moment. Réessayez dans {wait}.",
      err503NoWait: "Le service est très demandé en ce moment. Réessayez dans un instant.",
      errNetwork: "Connexion impossible. Vérifiez votre connexion internet, puis réessayez.",
      errBadRequest: "Cette question n’a pas pu être envoyée : {detail}",
      errServer: "Une erreur est survenue de notre côté. Réessayez dans un instant.",
      errStream: "La réponse s’est interrompue à cause d’une erreur. Réessayez dans un instant.",
      tooLong: "Votre question est trop longue ({n} caractères au maximum).",
      seconds: function (n) { return n <= 1 ? "1\u00a0seconde" : n + "\u00a0secondes"; },
      minutes: function (n) { return n <= 1 ? "1\u00a0minute" : n + "\u00a0minutes"; },
      retryIn: "Réessayer ({wait})",
      widgetOpen: "Poser une question à la librairie",
      widgetClose: "Fermer la conversation",
      noscript: "Cette page a besoin de JavaScript pour fonctionner."
    },
    en: {
      title: "LibriAssist — ask the bookstore",
      heading: "LibriAssist",
      tagline: "Ask about the bookstore: opening hours, orders, delivery, returns, gift cards…",
      messagesLabel: "Conversation",
      inputLabel: "Your question",
      skipToInput: "Skip to the question",
      inputPlaceholder: "For example: are you open on Sundays?",
      inputHint: "Enter to send, Shift + Enter for a new line.",
      send: "Send",
      stop: "Stop",
      retry: "Try again",
      newConversation: "New conversation",
      you: "You",
      bot: "LibriAssist",
      sources: "Sources",
      sourceCite: "See source {n}",
      cacheMark: "Answer given before",
      cacheMarkTitle: "This answer was already given to the same question, so it shows faster.",
      semanticMark: "Answer to a similar question",
      semanticMarkTitle: "This answer was given to a question very close to yours.",
      extractiveMark: "Excerpts from our documents",
      extractiveMarkTitle: "Written answers are unavailable for a moment: here are the most useful passages of our documents.",
      stopped: "Answer stopped.",
      truncated: "The answer was cut off before the end.",
      thinking: "LibriAssist is preparing an answer…",
      answering: "Answering…",
      answered: "Answer received.",
      welcome: "Hello! I answer questions about the bookstore. How can I help you?",
      err429: "You sent many questions at once. Please wait {wait} before trying again.",
      err429NoWait: "You sent many questions at once. Please wait a moment before trying again.",
      err503: "The service is very busy right now. Try again in {wait}.",
      err503NoWait: "The service is very busy right now. Try again in a moment.",
      errNetwork: "Cannot connect. Check your internet connection, then try again.",
      errBadRequest: "This question could not be sent: {detail}",
      errServer: "Something went wrong on our side. Try again in a moment.",
      errStream: "The answer stopped because of an error. Try again in a moment.",
      tooLong: "Your question is too long ({n} characters at most).",
      seconds: function (n) { return n <= 1 ? "1\u00a0second" : n + "\u00a0seconds"; },
      minutes: function (n) { return n <= 1 ? "1\u00a0minute" : n + "\u00a0minutes"; },
      retryIn: "Try again ({wait})",
      widgetOpen: "Ask the bookstore a question",
      widgetClose: "Close the conversation",
      noscript: "This page needs JavaScript to work."
    }
  };

  // `?lang=` wins so a link or the widget can force a language; otherwise the browser's
  // preference order decides, and anything that is neither French nor English gets French.
  function chooseLanguage(search, languages) {
    var forced = new URLSearchParams(search || "").get("lang");
    if (forced) {
      var f = forced.toLowerCase().slice(0, 2);
      if (STRINGS[f]) return f;
    }
    var list = languages || [];
    for (var i = 0; i < list.length; i++) {
      var code = String(list[i]).toLowerCase().slice(0, 2);
      if (STRINGS[code]) return code;
    }
    return "fr";
  }

  // Durations use a no-break space so "2 secondes" never splits across lines.
  function make(lang) {
    var table = STRINGS[lang] || STRINGS.fr;
    function t(key, vars) {
      var s = table[key];
      if (s === undefined) s = STRINGS.fr[key];
      if (s === undefined) return key;
      return String(s).replace(/\{(\w+)\}/g, function (_, name) {
        return vars && vars[name] !== undefined ? String(vars[name]) : "";
      });
    }
    // A human duration for Retry-After, rounded up so we never tell people to retry too early.
    t.duration = function (secs) {
      var s = Math.max(1, Math.ceil(secs));
      if (s < 90) return table.seconds(s);
      return table.minutes(Math.ceil(s / 60));
    };
    t.lang = lang;
    return t;
  }

  var nav = typeof navigator !== "undefined" ? (navigator.languages || [navigator.language]) : [];
  var search = typeof location !== "undefined" ? location.search : "";
  var lang = chooseLanguage(search, nav);

  window.LibriAssistI18n = {
    strings: STRINGS,
    chooseLanguage: chooseLanguage,
    make: make,
    lang: lang,
    t: make(lang)
  };
})();
