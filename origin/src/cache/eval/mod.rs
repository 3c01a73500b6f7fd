//! `libriassist eval cache`: how often the semantic cache serves a paraphrase (hit rate) and how
//! often it would serve another question's answer (false-hit rate), with and without the
//! guards, on public data sets and hand-written French sets.
//!
//! Two protocols:
//! - **pairs** (STS-B fr, banking77, bookstore groups and adversarial pairs): one question is
//!   cached, the other asked; a hit is similarity >= threshold and, with guards, the guards pass;
//! - **nearest neighbour** (Service-Public.fr, bookstore): every question is cached at once and
//!   each is asked against all the others, exactly as the cache searches (best candidates above
//!   the threshold, first one the guards accept). Any hit on another question is false; the
//!   hand-written paraphrases must find their own question.
//!
//! Needs the embedding model (scripts/fetch-models.sh). Results: docs/EVALUATION.md.

pub mod data;
pub mod handwritten;

use super::guards::{self, Guard, GuardSettings};
use super::settings::DEFAULT_THRESHOLD;
use super::text::Analysis;
use crate::embed::{Embedder, EmbeddingConfig};
use crate::vectors::dot;
use data::{Pair, PairSet};
use libriassist_protocol::normalize_question;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct EvalCacheArgs {
    /// Directory holding stsb-multi-mt-fr, banking77-en and service-public-qr.
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Similarity threshold of the main tables.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// banking77 pairs drawn per class (same intent, different intents).
    #[arg(long, default_value_t = 500)]
    pub banking_pairs: usize,
    /// Also list every false hit and the paraphrase misses with the guard that refused them.
    #[arg(long)]
    pub details: bool,
    /// Keep the question vectors in this file (JSON) and reuse them on the next run: embedding
    /// every text takes minutes, re-checking the guards takes seconds.
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Word similarity above which the content guard accepts a substituted word (main tables).
    #[arg(long, default_value_t = guards::DEFAULT_SUBSTITUTION_SIMILARITY)]
    pub substitution_similarity: f32,
    /// Share of a question's topic words that may be substituted (main tables; 0: none).
    #[arg(long, default_value_t = guards::DEFAULT_SUBSTITUTION_SHARE)]
    pub substitution_share: f32,
    /// Share of the cached question's topic words the new one may lack (main tables).
    #[arg(long, default_value_t = guards::DEFAULT_NARROWER_TOLERANCE)]
    pub narrower_tolerance: f32,
    /// Similarity from which the content tolerance applies (main tables).
    #[arg(long, default_value_t = guards::DEFAULT_TOLERANCE_SIMILARITY)]
    pub tolerance_similarity: f32,
    /// Similarity from which the narrower tolerance applies (main tables).
    #[arg(long, default_value_t = guards::DEFAULT_NARROWER_SIMILARITY)]
    pub narrower_similarity: f32,
    /// Share of the new question's topic words the cached one may lack (main tables).
    #[arg(long, default_value_t = GuardSettings::default().content_tolerance)]
    pub content_tolerance: f32,
}

/// Candidates tried per question in the nearest-neighbour protocol, as the cache's default.
const CANDIDATES: usize = 5;
const SWEEP: &[f32] = &[0.80, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94, 0.96];

/// Vectors of every text of the evaluation, computed once.
struct Vectors(HashMap<String, Vec<f32>>);

impl Vectors {
    fn get(&self, text: &str) -> &[f32] {
        self.0.get(text).map_or(&[], Vec::as_slice)
    }

    fn similarity(&self, a: &str, b: &str) -> f32 {
        dot(self.get(a), self.get(b))
    }

    /// Single-word similarity for the content guard's substitutions (words embedded as queries,
    /// as the cache embeds them).
    fn word_similarity(&self, a: &str, b: &str) -> Option<f32> {
        Some(dot(self.0.get(a)?, self.0.get(b)?))
    }

    fn verdict(
        &self,
        (new, new_text): (&Analysis, &str),
        (cached, cached_text): (&Analysis, &str),
        g: &GuardSettings,
    ) -> Result<(), Guard> {
        let s = self.similarity(new_text, cached_text);
        guards::check_with(new, cached, s, g, &|a, b| self.word_similarity(a, b))
    }
}

/// Whether `new` would be served the answer cached for `cached`.
fn hit(
    vectors: &Vectors,
    cached: &str,
    new: &str,
    threshold: f32,
    guards: Option<&GuardSettings>,
) -> bool {
    if vectors.similarity(cached, new) < threshold {
        return false;
    }
    guards.is_none_or(|g| {
        vectors
            .verdict(
                (&Analysis::of(new), new),
                (&Analysis::of(cached), cached),
                g,
            )
            .is_ok()
    })
}

/// Every word whose single-word vector a guarded comparison of these pairs may ask for.
fn substitution_words<'a>(
    vectors: &Vectors,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<String> {
    let widest = GuardSettings {
        substitution_similarity: 0.0,
        substitution_share: 1.0,
        content_tolerance: 0.5,
        narrower_tolerance: 0.5,
        narrower_similarity: 0.0,
        ..GuardSettings::default()
    };
    let mut out: Vec<String> = pairs
        .flat_map(|(cached, new)| {
            let s = vectors.similarity(new, cached);
            guards::substitution_words(&Analysis::of(new), &Analysis::of(cached), s, &widest)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn rate(pairs: &[Pair], f: impl Fn(&Pair) -> bool) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    pairs.iter().filter(|p| f(p)).count() as f64 / pairs.len() as f64
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

/// Outcome of the nearest-neighbour protocol.
#[derive(Default, Clone, Copy)]
struct Search {
    queries: usize,
    correct: usize,
    wrong: usize,
}

/// Asks each query against `entries` like the cache does. `expected[i]` lists the entries query
/// `i` may rightly hit (empty: it must miss). An entry with the query's own text is skipped.
fn nearest(
    vectors: &Vectors,
    entries: &[String],
    queries: &[(String, Vec<usize>)],
    threshold: f32,
    guards: Option<&GuardSettings>,
) -> Search {
    let analyses: Vec<Analysis> = entries.iter().map(|e| Analysis::of(e)).collect();
    let mut out = Search {
        queries: queries.len(),
        ..Search::default()
    };
    for (query, expected) in queries {
        let q = vectors.get(query);
        let mut candidates: Vec<(f32, usize)> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| *e != query)
            .map(|(i, e)| (dot(q, vectors.get(e)), i))
            .filter(|(s, _)| *s >= threshold)
            .collect();
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        candidates.truncate(CANDIDATES);
        let new = Analysis::of(query);
        let found = candidates.into_iter().find(|(_, i)| {
            guards.is_none_or(|g| {
                vectors
                    .verdict((&new, query), (&analyses[*i], &entries[*i]), g)
                    .is_ok()
            })
        });
        match found {
            Some((_, i)) if expected.contains(&i) => out.correct += 1,
            Some(_) => out.wrong += 1,
            None => {}
        }
    }
    out
}

async fn embed_all(embedder: &Embedder, texts: Vec<String>) -> Result<Vectors, String> {
    let mut map = HashMap::new();
    let total = texts.len();
    for (i, text) in texts.into_iter().enumerate() {
        if map.contains_key(&text) {
            continue;
        }
        let v = embedder
            .embed_query(&text)
            .await
            .map_err(|e| e.to_string())?;
        map.insert(text, v);
        if (i + 1) % 500 == 0 {
            eprintln!("embedded {}/{total}", i + 1);
        }
    }
    Ok(Vectors(map))
}

/// (cached, asked) pairs of every question of `entries` with its nearest others above
/// `threshold`, as the nearest-neighbour protocol tries them.
fn neighbour_pairs(vectors: &Vectors, entries: &[String], threshold: f32) -> Vec<Pair> {
    let mut out = Vec::new();
    for query in entries {
        let q = vectors.get(query);
        let mut candidates: Vec<(f32, &String)> = entries
            .iter()
            .filter(|e| *e != query)
            .map(|e| (dot(q, vectors.get(e)), e))
            .filter(|(s, _)| *s >= threshold)
            .collect();
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        candidates.truncate(CANDIDATES);
        out.extend(
            candidates
                .into_iter()
                .map(|(_, e)| (e.clone(), query.clone())),
        );
    }
    out
}

/// The bookstore groups as pairs: the first question of a group cached, each other one asked,
/// and every later pair in the group too.
fn bookstore_pairs() -> Vec<Pair> {
    let mut pairs = Vec::new();
    for group in handwritten::BOOKSTORE_GROUPS {
        for (i, a) in group.iter().enumerate() {
            for b in &group[i + 1..] {
                pairs.push(((*a).to_owned(), (*b).to_owned()));
            }
        }
    }
    pairs
}

fn adversarial_pairs() -> Vec<Pair> {
    handwritten::ADVERSARIAL
        .iter()
        .map(|(a, b, _)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// Runs the evaluation and returns the report (Markdown).
///
/// # Errors
/// A data set or the embedding model cannot be loaded.
pub async fn run(args: &EvalCacheArgs) -> Result<String, String> {
    let dir = &args.data;
    let t = args.threshold;
    let mut sets: Vec<PairSet> = vec![data::stsb(dir)?, data::banking77(dir, args.banking_pairs)?];
    sets.push(PairSet {
        name: "bookstore, hand-written (paraphrase groups / adversarial pairs)".into(),
        paraphrases: bookstore_pairs(),
        others: adversarial_pairs(),
    });
    let sp_questions = data::service_public_questions(dir)?;
    // The data has typographic spaces ("louer\u{a0}?"): questions are matched as the cache
    // would match them, normalized.
    let sp_index: HashMap<String, usize> = sp_questions
        .iter()
        .enumerate()
        .map(|(i, q)| (normalize_question(q), i))
        .collect();
    let find = |q: &str| sp_index.get(&normalize_question(q)).copied();
    let missing: Vec<&str> = handwritten::SERVICE_PUBLIC_PARAPHRASES
        .iter()
        .map(|(t, _)| *t)
        .chain(
            handwritten::SERVICE_PUBLIC_TWINS
                .iter()
                .flat_map(|(a, b)| [*a, *b]),
        )
        .filter(|t| find(t).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "questions of the hand-written sets not found in the data: {missing:?}"
        ));
    }

    let mut texts: Vec<String> = Vec::new();
    for set in &sets {
        for (a, b) in set.paraphrases.iter().chain(&set.others) {
            texts.push(a.clone());
            texts.push(b.clone());
        }
    }
    texts.extend(sp_questions.iter().cloned());
    texts.extend(
        handwritten::SERVICE_PUBLIC_PARAPHRASES
            .iter()
            .map(|(_, p)| (*p).to_owned()),
    );
    texts.extend(
        handwritten::BOOKSTORE_GROUPS
            .iter()
            .flat_map(|g| g.iter().map(|q| (*q).to_owned())),
    );
    let config = EmbeddingConfig::from_env_or_default();
    let embedder = tokio::task::spawn_blocking(move || Embedder::load(&config))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let saved: HashMap<String, Vec<f32>> = match &args.vectors {
        Some(path) if path.is_file() => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        _ => HashMap::new(),
    };
    let todo: Vec<String> = texts
        .into_iter()
        .filter(|t| !saved.contains_key(t))
        .collect();
    eprintln!(
        "embedding {} texts with {} ({} reused)",
        todo.len(),
        embedder.model_id(),
        saved.len()
    );
    let Vectors(mut vectors) = embed_all(&embedder, todo).await?;
    vectors.extend(saved);
    // The single words the content guard may weigh as substitutions: those of the pairs and of
    // the nearest neighbours above the lowest threshold of the sweep.
    let lowest = SWEEP[0].min(t);
    let near = {
        let v = Vectors(std::mem::take(&mut vectors));
        let near = neighbour_pairs(&v, &sp_questions, lowest);
        vectors = v.0;
        near
    };
    let heads_list: Vec<&str> = handwritten::BOOKSTORE_GROUPS.iter().map(|g| g[0]).collect();
    let words: Vec<String> = substitution_words(
        &Vectors(vectors.clone()),
        sets.iter()
            .flat_map(|s| s.paraphrases.iter().chain(&s.others))
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .chain(near.iter().map(|(a, b)| (a.as_str(), b.as_str())))
            .chain(
                handwritten::SERVICE_PUBLIC_PARAPHRASES
                    .iter()
                    .flat_map(|(_, p)| sp_questions.iter().map(move |q| (q.as_str(), *p))),
            )
            .chain(handwritten::BOOKSTORE_GROUPS.iter().flat_map(|g| {
                heads_list
                    .iter()
                    .flat_map(move |h| g[1..].iter().map(move |q| (*h, *q)))
            })),
    )
    .into_iter()
    .filter(|w| !vectors.contains_key(w))
    .collect();
    if !words.is_empty() {
        eprintln!("embedding {} single words", words.len());
        let Vectors(more) = embed_all(&embedder, words).await?;
        vectors.extend(more);
    }
    if let Some(path) = &args.vectors {
        let json = serde_json::to_string(&vectors).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let vectors = Vectors(vectors);

    let guards = GuardSettings {
        substitution_similarity: args.substitution_similarity,
        substitution_share: args.substitution_share,
        narrower_tolerance: args.narrower_tolerance,
        narrower_similarity: args.narrower_similarity,
        tolerance_similarity: args.tolerance_similarity,
        content_tolerance: args.content_tolerance,
        ..GuardSettings::default()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Model `{}`, threshold {t:.2}, {} candidates per question.\n",
        embedder.model_id(),
        CANDIDATES
    );

    // === pairs ===
    let _ = writeln!(out, "#### Pairs: one question cached, the other asked\n");
    let _ = writeln!(out, "| data set | paraphrase pairs | non-paraphrase pairs | hits, no guards | false hits, no guards | hits, guards | false hits, guards |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for set in &sets {
        let h = |pairs: &[Pair], g: Option<&GuardSettings>| {
            rate(pairs, |(a, b)| hit(&vectors, a, b, t, g))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | **{}** | **{}** |",
            set.name,
            set.paraphrases.len(),
            set.others.len(),
            pct(h(&set.paraphrases, None)),
            pct(h(&set.others, None)),
            pct(h(&set.paraphrases, Some(&guards))),
            pct(h(&set.others, Some(&guards))),
        );
    }

    // === nearest neighbour ===
    let twin = |q: &str| -> Vec<usize> {
        handwritten::SERVICE_PUBLIC_TWINS
            .iter()
            .filter_map(|(a, b)| {
                let n = normalize_question(q);
                if normalize_question(a) == n {
                    find(b)
                } else if normalize_question(b) == n {
                    find(a)
                } else {
                    None
                }
            })
            .collect()
    };
    let distinct: Vec<(String, Vec<usize>)> =
        sp_questions.iter().map(|q| (q.clone(), twin(q))).collect();
    let paraphrased: Vec<(String, Vec<usize>)> = handwritten::SERVICE_PUBLIC_PARAPHRASES
        .iter()
        .map(|(title, p)| ((*p).to_owned(), find(title).into_iter().collect()))
        .collect();
    let heads: Vec<String> = handwritten::BOOKSTORE_GROUPS
        .iter()
        .map(|g| g[0].to_owned())
        .collect();
    let book_queries: Vec<(String, Vec<usize>)> = handwritten::BOOKSTORE_GROUPS
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g[1..].iter().map(move |q| ((*q).to_owned(), vec![i])))
        .collect();

    let _ = writeln!(
        out,
        "\n#### Nearest neighbour: every question cached, each asked against all the others\n"
    );
    let _ = writeln!(out, "| cache / questions asked | questions | right hits, no guards | wrong hits, no guards | right hits, guards | wrong hits, guards |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    /// A table row: its label, the cached questions and the questions asked with their twins.
    type Row<'a> = (&'a str, &'a [String], &'a [(String, Vec<usize>)]);
    let rows: [Row; 3] = [
        ("Service-Public.fr, {n} distinct questions / each of them (any hit but a listed twin is wrong)", &sp_questions, &distinct),
        ("Service-Public.fr, {n} distinct questions / hand-written paraphrases of {p} of them", &sp_questions, &paraphrased),
        ("bookstore, first question of each of the {n} groups / the other questions of the groups", &heads, &book_queries),
    ];
    for (name, entries, queries) in rows {
        let name = name
            .replace("{n}", &entries.len().to_string())
            .replace("{p}", &queries.len().to_string());
        let (u, g) = (
            nearest(&vectors, entries, queries, t, None),
            nearest(&vectors, entries, queries, t, Some(&guards)),
        );
        let f = |n: usize, s: &Search| pct(n as f64 / s.queries.max(1) as f64);
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | **{}** | **{}** |",
            u.queries,
            f(u.correct, &u),
            f(u.wrong, &u),
            f(g.correct, &g),
            f(g.wrong, &g)
        );
    }

    // === sweep ===
    let _ = writeln!(
        out,
        "\n#### Threshold sweep, guards on (paraphrase hits / false hits, pairs protocol)\n"
    );
    let _ = write!(out, "| threshold |");
    for set in &sets {
        let _ = write!(
            out,
            " {} |",
            set.name.split([' ', ',']).next().unwrap_or("")
        );
    }
    let _ = writeln!(out, " Service-Public NN (right / wrong) |");
    let _ = writeln!(out, "|---:|{}---:|", "---:|".repeat(sets.len()));
    for &th in SWEEP {
        let _ = write!(out, "| {th:.2} |");
        for set in &sets {
            let p = rate(&set.paraphrases, |(a, b)| {
                hit(&vectors, a, b, th, Some(&guards))
            });
            let f = rate(&set.others, |(a, b)| hit(&vectors, a, b, th, Some(&guards)));
            let _ = write!(out, " {} / {} |", pct(p), pct(f));
        }
        let s = nearest(&vectors, &sp_questions, &paraphrased, th, Some(&guards));
        let d = nearest(&vectors, &sp_questions, &distinct, th, Some(&guards));
        let n = |x: usize, q: usize| pct(x as f64 / q.max(1) as f64);
        let _ = writeln!(
            out,
            " {} / {} |",
            n(s.correct, s.queries),
            n(d.wrong + s.wrong, d.queries + s.queries)
        );
    }

    // === ablation ===
    let _ = writeln!(out, "\n#### Each guard's share: false hits with one guard off (threshold {t:.2}, all non-paraphrase pairs)\n");
    let others: Vec<Pair> = sets.iter().flat_map(|s| s.others.iter().cloned()).collect();
    // banking77's same-intent pairs are not paraphrases (see the pairs table): left out here.
    let paraphrases: Vec<Pair> = sets
        .iter()
        .filter(|s| !s.name.starts_with("banking77"))
        .flat_map(|s| s.paraphrases.iter().cloned())
        .collect();
    let _ = writeln!(
        out,
        "| guards | false hits ({} pairs) | paraphrase hits ({} pairs, STS-B and bookstore) |",
        others.len(),
        paraphrases.len()
    );
    let _ = writeln!(out, "|---|---:|---:|");
    let mut variants: Vec<(String, GuardSettings)> = vec![("all on".into(), guards.clone())];
    for guard in Guard::ALL {
        let mut s = guards.clone();
        match guard {
            Guard::Language => s.language = false,
            Guard::Negation => s.negation = false,
            Guard::Numbers => s.numbers = false,
            Guard::Names => s.names = false,
            Guard::Content => s.content = false,
        }
        variants.push((format!("all but {}", guard.as_str()), s));
    }
    variants.push((
        "no substitutions".into(),
        GuardSettings {
            substitution_share: 0.0,
            ..guards.clone()
        },
    ));
    variants.push((
        "content tolerance 0".into(),
        GuardSettings {
            content_tolerance: 0.0,
            ..guards.clone()
        },
    ));
    variants.push((
        "content tolerance 0.5".into(),
        GuardSettings {
            content_tolerance: 0.5,
            ..guards.clone()
        },
    ));
    variants.push(("none".into(), GuardSettings::off()));
    for (name, s) in &variants {
        let f = rate(&others, |(a, b)| hit(&vectors, a, b, t, Some(s)));
        let p = rate(&paraphrases, |(a, b)| hit(&vectors, a, b, t, Some(s)));
        let _ = writeln!(out, "| {name} | {} | {} |", pct(f), pct(p));
    }

    // === adversarial table ===
    let _ = writeln!(
        out,
        "\n#### Hand-written adversarial pairs (all must be misses)\n"
    );
    let _ = writeln!(
        out,
        "| kind | cached question | new question | similarity | no guards | guards |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---|---|");
    let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (cached, new, kind) in handwritten::ADVERSARIAL {
        let s = vectors.similarity(cached, new);
        let verdict = vectors.verdict(
            (&Analysis::of(new), new),
            (&Analysis::of(cached), cached),
            &guards,
        );
        let unguarded = if s >= t { "**hit**" } else { "miss" };
        let guarded = match verdict {
            Err(g) => format!("miss ({})", g.as_str()),
            Ok(()) if s >= t => "**HIT**".to_owned(),
            Ok(()) => "miss (threshold)".to_owned(),
        };
        let e = by_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += usize::from(guarded == "**HIT**");
        let _ = writeln!(
            out,
            "| {kind} | {cached} | {new} | {s:.3} | {unguarded} | {guarded} |"
        );
    }
    let hits: usize = by_kind.values().map(|v| v.1).sum();
    let _ = writeln!(
        out,
        "\nAdversarial hits with guards: {hits} of {}.",
        handwritten::ADVERSARIAL.len()
    );
    if args.details {
        details(
            &mut out,
            &vectors,
            &sets,
            &sp_questions,
            &distinct,
            &paraphrased,
            t,
            &guards,
        );
    }
    Ok(out)
}

/// The individual errors behind the rates, to read before changing a guard.
#[allow(clippy::too_many_arguments)]
fn details(
    out: &mut String,
    vectors: &Vectors,
    sets: &[PairSet],
    entries: &[String],
    distinct: &[(String, Vec<usize>)],
    paraphrased: &[(String, Vec<usize>)],
    t: f32,
    guards: &GuardSettings,
) {
    let verdict = |cached: &str, new: &str| {
        vectors.verdict(
            (&Analysis::of(new), new),
            (&Analysis::of(cached), cached),
            guards,
        )
    };
    let words = |cached: &str, new: &str| {
        let (n, c) = (Analysis::of(new), Analysis::of(cached));
        let only = |a: &Analysis, b: &Analysis| -> Vec<String> {
            a.content
                .iter()
                .filter(|w| !b.content.contains(*w))
                .map(|w| a.surface.get(w).cloned().unwrap_or_else(|| w.clone()))
                .collect()
        };
        format!(
            " [asked only: {:?}; cached only: {:?}]",
            only(&n, &c),
            only(&c, &n)
        )
    };
    for set in sets {
        let _ = writeln!(out, "\n#### {}: false hits\n", set.name);
        for (a, b) in set
            .others
            .iter()
            .filter(|(a, b)| hit(vectors, a, b, t, Some(guards)))
        {
            let _ = writeln!(
                out,
                "- {:.3} `{a}` / `{b}`{}",
                vectors.similarity(a, b),
                words(a, b)
            );
        }
        let _ = writeln!(out, "\n#### {}: paraphrase misses\n", set.name);
        for (a, b) in set
            .paraphrases
            .iter()
            .filter(|(a, b)| !hit(vectors, a, b, t, Some(guards)))
        {
            let (why, diff) = match verdict(a, b) {
                Err(Guard::Content) => ("content", words(a, b)),
                Err(g) => (g.as_str(), String::new()),
                Ok(()) => ("threshold", String::new()),
            };
            let _ = writeln!(
                out,
                "- {:.3} {why}: `{a}` / `{b}`{diff}",
                vectors.similarity(a, b)
            );
        }
    }
    let analyses: Vec<Analysis> = entries.iter().map(|e| Analysis::of(e)).collect();
    for (name, queries) in [
        ("Service-Public.fr distinct questions", distinct),
        ("Service-Public.fr paraphrases", paraphrased),
    ] {
        let _ = writeln!(
            out,
            "\n#### {name}: nearest-neighbour outcomes other than a right hit\n"
        );
        for (query, expected) in queries {
            let q = vectors.get(query);
            let mut candidates: Vec<(f32, usize)> = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| *e != query)
                .map(|(i, e)| (dot(q, vectors.get(e)), i))
                .filter(|(s, _)| *s >= t)
                .collect();
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
            candidates.truncate(CANDIDATES);
            let new = Analysis::of(query);
            let found = candidates.iter().find(|(_, i)| {
                vectors
                    .verdict((&new, query), (&analyses[*i], &entries[*i]), guards)
                    .is_ok()
            });
            match found {
                Some((s, i)) if !expected.contains(i) => {
                    let _ = writeln!(out, "- WRONG {s:.3} `{query}` -> `{}`", entries[*i]);
                }
                None if !expected.is_empty() => {
                    let best = candidates.first().map_or(
                        String::from("nothing above the threshold"),
                        |(s, i)| {
                            let why = vectors
                                .verdict((&new, query), (&analyses[*i], &entries[*i]), guards)
                                .err()
                                .map_or("", |g| g.as_str());
                            format!("{s:.3} {why} `{}`", entries[*i])
                        },
                    );
                    let _ = writeln!(out, "- MISS `{query}`: best {best}");
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_cover_every_group() {
        let pairs = bookstore_pairs();
        let expected: usize = handwritten::BOOKSTORE_GROUPS
            .iter()
            .map(|g| g.len() * (g.len() - 1) / 2)
            .sum();
        assert_eq!(pairs.len(), expected);
    }

    #[test]
    fn nearest_neighbour_counts_right_and_wrong_hits() {
        let mut map = HashMap::new();
        map.insert("a".to_owned(), vec![1.0, 0.0]);
        map.insert("b".to_owned(), vec![0.0, 1.0]);
        map.insert("a2".to_owned(), vec![0.99, 0.14]);
        map.insert("c".to_owned(), vec![0.14, 0.99]);
        let v = Vectors(map);
        let entries = vec!["a".to_owned(), "b".to_owned()];
        let queries = vec![("a2".to_owned(), vec![0]), ("c".to_owned(), vec![])];
        let s = nearest(&v, &entries, &queries, 0.9, None);
        assert_eq!((s.queries, s.correct, s.wrong), (2, 1, 1));
    }
}
