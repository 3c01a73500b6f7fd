//! Word lists the semantic guards rely on: French and English stop words, negation markers,
//! interrogatives, number words and antonym pairs. Plain data, kept apart from the logic in
//! `text.rs` and `guards.rs` so that a missed word is a one-line fix with its test.
//!
//! Lists are lowercase with accents; lookups fold accents first (`text::fold`), so a customer
//! typing without accents ("numerique", "deja") is matched too.

/// Words that carry no topic of their own in a customer question: articles, pronouns,
/// prepositions, conjunctions, the light verbs questions are built with (être, avoir, pouvoir,
/// vouloir, devoir, falloir, savoir, faire), politeness and fillers. Negation markers and the
/// decisive interrogatives are *not* here: they have their own guards.
pub const FRENCH_STOP_WORDS: &[&str] = &[
    // articles, determiners
    "le", "la", "les", "l", "un", "une", "des", "du", "de", "d", "au", "aux", "ce", "cet", "cette", "ces", "mon", "ma",
    "mes", "ton", "ta", "tes", "son", "sa", "ses", "notre", "nos", "votre", "vos", "leur", "leurs", "quelque",
    "quelques", "chaque", "certains", "certaines", "tout", "toute", "tous", "toutes", "autre", "autres", "même", "mêmes",
    // pronouns
    "je", "j", "tu", "il", "elle", "on", "nous", "vous", "ils", "elles", "me", "m", "te", "se", "s", "lui", "y", "en",
    "moi", "toi", "soi", "eux", "ça", "cela", "ceci", "celui", "celle", "ceux", "celles", "qui", "que", "qu", "quoi",
    "dont", "lequel", "laquelle", "lesquels", "lesquelles", "quel", "quels", "quelle", "quelles", "t", "c",
    // prepositions, conjunctions, adverbs of little weight
    "à", "a", "dans", "par", "pour", "sur", "sous", "avec", "chez", "entre", "vers", "depuis", "pendant", "dès", "et",
    "ou", "mais", "donc", "or", "car", "si", "comme", "comment", "est-ce", "aussi", "bien", "très", "trop", "encore",
    "déjà", "alors", "ainsi", "puis", "ici", "là", "voici", "voilà", "également", "actuellement", "exactement",
    "vraiment", "svp", "stp", "merci", "bonjour", "bonsoir", "salut", "madame", "monsieur", "plaît", "plait", "possible",
    "possibilité", "moyen", "façon", "manière", "quoi", "chose", "choses",
    // être
    "être", "suis", "es", "est", "sommes", "êtes", "sont", "été", "étais", "était", "étions", "étiez", "étaient", "serai",
    "sera", "serons", "serez", "seront", "serait", "seraient", "soit", "soient",
    // avoir
    "avoir", "ai", "as", "avons", "avez", "ont", "eu", "avais", "avait", "avions", "aviez", "avaient", "aurai", "aura",
    "aurons", "aurez", "auront", "aurais", "aurait", "auriez", "aie", "ait",
    // pouvoir, vouloir, devoir, falloir, savoir, faire
    "pouvoir", "peux", "peut", "pouvons", "pouvez", "peuvent", "pourrai", "pourra", "pourrais", "pourrait", "pourriez",
    "pourrions", "puisse", "puissiez", "vouloir", "veux", "veut", "voulons", "voulez", "veulent", "voudrais",
    "voudrait", "voudrions", "voudriez", "souhaite", "souhaiterais", "souhaitons", "aimerais", "aimerions", "devoir",
    "dois", "doit", "devons", "devez", "doivent", "devrais", "devrait", "devrions", "devriez", "faut", "falloir",
    "faudrait", "savoir", "sais", "sait", "savez", "savons", "saurais", "faire", "fais", "fait", "faisons", "faites",
    "font", "ferai", "fera", "ferais", "ferait",
    // light verbs of offer, existence and definition: "Proposez-vous X ?" asks what "Avez-vous
    // X ?" and "Existe-t-il X ?" ask, "En quoi consiste X ?" what "Qu'est-ce que X ?" asks
    "proposer", "propose", "proposes", "proposez", "proposons", "proposent", "proposé", "proposée", "proposés",
    "proposées", "disposer", "dispose", "disposez", "existe", "existent", "exister", "consiste", "consistent",
    "signifie", "signifient", "désigne", "appelle",
    // quantifiers
    "plusieurs", "beaucoup", "peu", "divers", "diverses", "différents", "différentes",
    // light verbs of "passer commande", "prendre du temps", "prendre les commandes"
    "passer", "passe", "passez", "prendre", "prend", "prends", "prenez", "prennent",
    // the bookstore and its books: implied in every question asked to it ("les horaires de la
    // librairie" are "vos horaires", "les formats de livres" are "vos formats")
    "livre", "livres", "librairie", "librairies",
];

/// Verbs that only say the store offers something when the store is their subject ("Vendez-vous
/// des liseuses ?" asks what "Avez-vous des liseuses ?" asks) but keep their meaning with
/// another subject ("Puis-je vendre mes livres ?").
pub const STORE_OFFER_VERBS: &[&str] = &["vendre", "vendez", "organiser", "organisez", "accepter", "acceptez"];

pub const ENGLISH_STOP_WORDS: &[&str] = &[
    "a", "an", "the", "this", "that", "these", "those", "my", "your", "our", "their", "his", "her", "its", "i", "me",
    "you", "we", "us", "they", "them", "he", "she", "it", "what", "which", "who", "whom", "how", "to", "of", "in",
    "on", "at", "by", "for", "with", "from", "about", "into", "onto", "and", "or", "but", "so", "if", "as", "is", "am",
    "are", "was", "were", "be", "been", "being", "do", "does", "did", "done", "have", "has", "had", "having", "can",
    "could", "would", "should", "will", "shall", "may", "might", "must", "need", "want", "like", "please", "thanks",
    "hello", "hi", "there", "here", "any", "some", "all", "just", "also", "still", "yet", "already", "really", "get",
    "got", "s", "t", "d", "ll", "m", "re", "ve",
];

/// Marks a question as negated on their own. `plus`, `personne`, `point` and `guère` are only
/// negations beside `ne` (which is itself a marker), so they are not listed: "plus de livres"
/// and "par personne" are not negative.
pub const NEGATION_MARKERS: &[&str] = &[
    "ne", "n", "pas", "jamais", "rien", "aucun", "aucune", "aucuns", "aucunes", "nul", "nulle", "nullement", "sans",
    "non", "ni", "not", "no", "never", "nothing", "none", "nobody", "nowhere", "neither", "nor", "without", "cannot",
];

/// Question words whose difference changes the question ("Quand livrez-vous ?" vs "Où
/// livrez-vous ?") while the rest of the words can be identical. They must match exactly.
pub const DECISIVE_INTERROGATIVES: &[&str] = &["quand", "où", "pourquoi", "combien", "when", "where", "why"];

/// Cardinal number words and their values. "un", "une" and "one" are left out on purpose: they
/// are far more often articles or pronouns than counts.
pub const NUMBER_WORDS: &[(&str, u64)] = &[
    ("zéro", 0), ("deux", 2), ("trois", 3), ("quatre", 4), ("cinq", 5), ("six", 6), ("sept", 7), ("huit", 8),
    ("neuf", 9), ("dix", 10), ("onze", 11), ("douze", 12), ("treize", 13), ("quatorze", 14), ("quinze", 15),
    ("seize", 16), ("vingt", 20), ("vingts", 20), ("trente", 30), ("quarante", 40), ("cinquante", 50),
    ("soixante", 60), ("septante", 70), ("huitante", 80), ("octante", 80), ("nonante", 90), ("cent", 100),
    ("cents", 100), ("mille", 1000), ("million", 1_000_000), ("millions", 1_000_000), ("milliard", 1_000_000_000),
    ("milliards", 1_000_000_000), ("zero", 0), ("two", 2), ("three", 3), ("four", 4), ("five", 5), ("six", 6),
    ("seven", 7), ("eight", 8), ("nine", 9), ("ten", 10), ("eleven", 11), ("twelve", 12), ("thirteen", 13),
    ("fourteen", 14), ("fifteen", 15), ("sixteen", 16), ("seventeen", 17), ("eighteen", 18), ("nineteen", 19),
    ("twenty", 20), ("thirty", 30), ("forty", 40), ("fifty", 50), ("sixty", 60), ("seventy", 70), ("eighty", 80),
    ("ninety", 90), ("hundred", 100), ("thousand", 1000),
];

/// Ordinal words. "second"/"seconde" are left out: "de seconde main" means second-hand.
pub const ORDINAL_WORDS: &[(&str, u64)] = &[
    ("premier", 1), ("première", 1), ("premiers", 1), ("premières", 1), ("first", 1), ("third", 3), ("fourth", 4),
    ("fifth", 5), ("sixth", 6), ("seventh", 7), ("eighth", 8), ("ninth", 9), ("tenth", 10), ("dernier", u64::MAX),
    ("dernière", u64::MAX), ("last", u64::MAX),
];

/// Subject pronouns found after an inverted verb ("Livrez-vous", "Peut-on", "Est-ce"): the word
/// before them is a verb, not a name, even when it starts the sentence with a capital.
pub const INVERTED_PRONOUNS: &[&str] = &["je", "tu", "il", "elle", "on", "nous", "vous", "ils", "elles", "t", "ce"];

/// Frequent words of one language and not the other, to tell French questions from English ones.
pub const FRENCH_MARKERS: &[&str] = &[
    "le", "la", "les", "des", "du", "de", "une", "est", "et", "vous", "je", "nous", "pour", "dans", "avec", "sur",
    "que", "qui", "quel", "quels", "quelle", "quelles", "comment", "où", "pourquoi", "combien", "mon", "ma", "mes",
    "votre", "vos", "pas", "ne", "au", "aux", "il", "elle", "ce", "cette", "ces", "puis", "peut", "faire", "sont",
    "quand", "ai", "avez", "êtes", "qu", "l", "d", "j", "n",
];

pub const ENGLISH_MARKERS: &[&str] = &[
    "the", "is", "are", "do", "does", "did", "what", "how", "why", "where", "when", "which", "my", "your", "you", "i",
    "can", "could", "would", "should", "will", "to", "of", "and", "for", "with", "have", "has", "get", "it", "this",
    "that", "not", "there", "be", "am", "was", "been", "from",
];

/// Words customers use for the same thing, compared as one: a question that says "frais" where
/// the cached one says "prix" is not a different question. Kept to near-synonyms of the
/// bookstore's domain; a word listed here must not also be the opposite of another in its
/// group. Compared by stem, so listing one form of a word covers its inflections.
pub const SYNONYMS: &[&[&str]] = &[
    &["livraison", "livrer", "livrez", "livré", "expédier", "expédiez", "expédie", "expédition", "acheminer", "acheminement"],
    &["prix", "coût", "coûter", "tarif", "frais", "montant"],
    &["payer", "payez", "régler", "réglez", "paiement", "règlement"],
    &["retour", "retourner", "retournez", "renvoyer", "renvoyez", "renvoi"],
    &["modifier", "modifiez", "changer", "changez", "modification", "changement", "rectifier"],
    &["magasin", "boutique", "librairie"],
    &["remise", "réduction", "rabais", "ristourne"],
    &["contacter", "joindre", "contact"],
    &["abîmé", "abîmer", "endommagé", "endommager", "détérioré", "cassé"],
    &["numérique", "numériques", "ebook", "ebooks", "e-book"],
    &["réserver", "réservation"],
    &["annuler", "annulation"],
    &["télécharger", "téléchargement"],
    &["rembourser", "remboursement"],
    &["vendre", "vente", "vendu"],
    &["gratuit", "gratuite", "gratuitement", "offert", "offerte", "offerts", "offertes"],
    &["ouvrir", "ouverture", "ouvert", "ouverte", "ouverts"],
    &["horaire", "horaires", "heure", "heures"],
    &["délai", "délais", "durée"],
    // "combien de temps" is read as this group too (text.rs)
    &["trouver", "situer", "situé", "située", "situés"],
    &["garer", "stationner", "stationnement", "parking"],
    &["abonner", "abonnement"],
    &["inscrire", "inscription"],
    &["facture", "facturation"],
    &["minimum", "minimal", "minimale"],
    &["maximum", "maximal", "maximale"],
];
