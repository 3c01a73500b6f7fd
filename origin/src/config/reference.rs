//! `libriassist config --reference`: the configuration reference of docs/OPERATIONS.md, as
//! Markdown generated from the code that defines the configuration, so that the document cannot
//! drift from it. Keys and defaults come from the serialized [`Config::default`]; flags,
//! variables and descriptions from the clap [`Overrides`]; and which key a flag sets from
//! [`Config::apply`] itself: each flag is applied alone to the defaults and the changed key read
//! back, so the table says what the code does, not what someone wrote about it.

use super::{Config, Overrides};
use crate::embed::{EmbeddingConfig, DEFAULT_MODEL_ID, ORT_LIBRARY_FILE};
use clap::{Args, Command, FromArgMatches};
use std::collections::BTreeMap;
use std::fmt::Write;
use toml::Value;

/// Descriptions of the keys that have no flag or variable (set in the file only): doc comments
/// do not exist at run time. A test requires exactly one for each such key.
const FILE_ONLY: &[(&str, &str)] = &[
    (
        "backends.idle_token_timeout_ms",
        "A stream with no new token for this long is treated as failed, ms",
    ),
    (
        "backends.stall_timeout_ms",
        "A backend that owes first tokens and sent none for this long is ejected and its waiting requests move elsewhere, ms",
    ),
    (
        "backends.failure_threshold",
        "Consecutive failures that open a backend's circuit",
    ),
    (
        "backends.base_backoff_ms",
        "First back-off of an open circuit, ms; doubles on each failed probe",
    ),
    (
        "backends.max_backoff_ms",
        "Longest back-off of an open circuit, ms",
    ),
    (
        "backends.max_attempts",
        "Different backends a question may try before its first token",
    ),
    (
        "backends.share_load",
        "Replicas share their in-flight counts per backend through the cache's Redis (`cache.redis_url`), so together they never exceed a backend's slots",
    ),
    (
        "generation.system_prompt",
        "System prompt; the knowledge base adds the numbered passages after it",
    ),
    (
        "cache.semantic.candidates",
        "Nearest cached questions above the threshold tried against the guards",
    ),
    (
        "cache.semantic.guards.language",
        "Semantic hit guard: same language",
    ),
    (
        "cache.semantic.guards.negation",
        "Semantic hit guard: both questions negated or neither",
    ),
    (
        "cache.semantic.guards.numbers",
        "Semantic hit guard: the same numbers",
    ),
    (
        "cache.semantic.guards.names",
        "Semantic hit guard: the same names and places",
    ),
    (
        "cache.semantic.guards.content",
        "Semantic hit guard: the same topic words, no opposites",
    ),
    (
        "cache.semantic.guards.content_tolerance",
        "Fraction of the new question's topic words the cached one may lack",
    ),
    (
        "cache.semantic.guards.tolerance_similarity",
        "Question similarity from which content_tolerance applies",
    ),
    (
        "cache.semantic.guards.narrower_tolerance",
        "Fraction of the cached question's topic words the new one may lack",
    ),
    (
        "cache.semantic.guards.narrower_similarity",
        "Question similarity from which narrower_tolerance and substitutions apply",
    ),
    (
        "cache.semantic.guards.substitution_similarity",
        "Single-word similarity from which a topic word may stand for another (above 1: never)",
    ),
    (
        "cache.semantic.guards.substitution_share",
        "Fraction of the new question's topic words that may be substituted",
    ),
    (
        "index.candidates",
        "Passages taken from each search (BM25, vectors) before fusion",
    ),
    (
        "index.fusion",
        "How the BM25 and vector rankings are fused: zscore or rrf",
    ),
    (
        "index.rrf_k",
        "Reciprocal rank fusion constant (fusion = rrf only)",
    ),
    (
        "index.bm25_weight",
        "Weight of the BM25 ranking in the fusion",
    ),
    (
        "index.dense_weight",
        "Weight of the vector ranking in the fusion",
    ),
    (
        "index.extractive_passages",
        "Passages quoted by an extractive answer (when no model can answer)",
    ),
    (
        "index.no_answer",
        "The answer when no passage is relevant enough",
    ),
];

/// Values tried, in order, until one parses as the flag's type and changes the configuration.
const PROBES: [&str; 8] = [
    "7",
    "9",
    "0.5",
    "false",
    "true",
    "127.0.0.1:9",
    "http://probe.invalid:9",
    "redis://probe.invalid:9/0",
];

/// Longest default shown whole; longer texts are cut (`libriassist config` prints them).
const SHOWN_CHARS: usize = 64;

/// One flag of `libriassist serve`.
struct Flag {
    long: String,
    env: Option<String>,
    help: String,
    /// The keys it sets; empty for flags that are not configuration keys (`--config`).
    keys: Vec<String>,
}

/// The reference as Markdown: a table of every key, then the flags that set no key.
pub fn reference() -> String {
    let defaults = flatten(&documented_defaults());
    let flags = flags();
    let mut keys: Vec<&String> = defaults
        .keys()
        .chain(flags.iter().flat_map(|f| &f.keys))
        .collect();
    keys.sort();
    keys.dedup();

    let mut out =
        String::from("| key | default | variable | flag | meaning |\n|---|---|---|---|---|\n");
    for key in keys {
        let flag = flags.iter().find(|f| f.keys.contains(key));
        let meaning = match flag {
            Some(f) => f.help.clone(),
            None => FILE_ONLY
                .iter()
                .find(|(k, _)| k == key)
                .map_or_else(String::new, |(_, d)| (*d).to_owned()),
        };
        let default = defaults
            .get(key)
            .map_or_else(|| "unset".to_owned(), |v| format!("`{}`", shown(v)));
        let env = flag
            .and_then(|f| f.env.as_deref())
            .map_or_else(String::new, |e| format!("`{e}`"));
        let long = flag.map_or_else(String::new, |f| format!("`--{}`", f.long));
        let _ = writeln!(
            out,
            "| `{key}` | {} | {env} | {long} | {} |",
            cell(&default),
            cell(&meaning)
        );
    }
    for f in flags.iter().filter(|f| f.keys.is_empty()) {
        let env = f
            .env
            .as_deref()
            .map_or_else(String::new, |e| format!(" (`{e}`)"));
        let _ = writeln!(
            out,
            "\n`--{}`{env}: {}.",
            f.long,
            f.help.trim_end_matches('.')
        );
    }
    out
}

/// The defaults, with the embedding paths written as the documented layout under
/// `$LIBRIASSIST_CACHE` instead of this machine's home directory.
fn documented_defaults() -> Config {
    let cache = std::path::Path::new("$LIBRIASSIST_CACHE");
    let embedding = EmbeddingConfig {
        model_dir: cache.join("models").join(DEFAULT_MODEL_ID),
        ort_library: cache.join("onnxruntime").join(ORT_LIBRARY_FILE),
        ..Config::default().embedding
    };
    Config {
        embedding,
        ..Config::default()
    }
}

fn flags() -> Vec<Flag> {
    let command = Overrides::augment_args(Command::new("libriassist"));
    // Probed without the environment, so variables set in this process change nothing.
    let probe_command = command.clone().mut_args(|a| a.env(None));
    let baseline = flatten(&applied(&Overrides::default()));
    command
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?.to_owned();
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let help = help
                .split(" [default:")
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let keys = probe(&probe_command, &long, &baseline);
            Some(Flag {
                long,
                env,
                help,
                keys,
            })
        })
        .collect()
}

/// The keys that `--long` changes, with the first probe value it accepts that changes any.
fn probe(command: &Command, long: &str, baseline: &BTreeMap<String, Value>) -> Vec<String> {
    for value in PROBES {
        let Ok(matches) = command
            .clone()
            .try_get_matches_from(["libriassist", &format!("--{long}={value}")])
        else {
            continue;
        };
        let Ok(overrides) = Overrides::from_arg_matches(&matches) else {
            continue;
        };
        let changed: Vec<String> = flatten(&applied(&overrides))
            .into_iter()
            .filter(|(k, v)| baseline.get(k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        if !changed.is_empty() {
            return changed;
        }
    }
    Vec::new()
}

fn applied(overrides: &Overrides) -> Config {
    let mut config = documented_defaults();
    config.apply(overrides);
    config
}

/// `section.key` -> value, for every leaf of the configuration as TOML.
fn flatten(config: &Config) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, Value>) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Table(t) => walk(&key, t, out),
                leaf => {
                    out.insert(key, leaf.clone());
                }
            }
        }
    }
    // Through TOML text, as `libriassist config` prints it: converting to a `Value` directly
    // would widen f32 defaults (0.9 shown as 0.8999999761581421).
    let mut out = BTreeMap::new();
    if let Ok(table) = config.to_toml().parse::<toml::Table>() {
        walk("", &table, &mut out);
    }
    out
}

fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= SHOWN_CHARS {
        return text;
    }
    let cut: String = text.chars().take(SHOWN_CHARS - 8).collect();
    format!("{}…\"", cut.trim_end())
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/OPERATIONS.md");
    const START: &str = "<!-- config-reference:start -->\n";
    const END: &str = "<!-- config-reference:end -->";

    #[test]
    fn every_key_has_a_meaning_and_file_only_descriptions_are_not_stale() {
        let flags = flags();
        let set_by_flag = |key: &str| flags.iter().any(|f| f.keys.iter().any(|k| k == key));
        let keys = flatten(&documented_defaults());
        for key in keys.keys() {
            let described = FILE_ONLY.iter().filter(|(k, _)| k == key).count();
            match (set_by_flag(key), described) {
                (true, 0) | (false, 1) => {}
                (true, _) => {
                    panic!("{key} has a flag: drop it from FILE_ONLY, the flag's help describes it")
                }
                (false, _) => panic!("{key} has no flag: describe it once in FILE_ONLY"),
            }
        }
        for (key, _) in FILE_ONLY {
            assert!(
                keys.contains_key(*key),
                "FILE_ONLY names {key}, which is not a configuration key"
            );
        }
    }

    #[test]
    fn flags_map_to_the_keys_they_set() {
        let flags = flags();
        let keys = |long: &str| {
            flags
                .iter()
                .find(|f| f.long == long)
                .map(|f| f.keys.clone())
                .unwrap()
        };
        assert_eq!(keys("slots"), ["backends.slots"]);
        assert_eq!(keys("cache-semantic"), ["cache.semantic.enabled"]);
        assert_eq!(keys("admin-token"), ["server.admin_token"]);
        assert!(keys("config").is_empty());
        assert!(
            flags
                .iter()
                .filter(|f| f.long != "config")
                .all(|f| f.keys.len() == 1),
            "one key per flag"
        );
    }

    /// docs/OPERATIONS.md holds the generated table between two markers. To update it after a
    /// configuration change: `LIBRIASSIST_UPDATE_DOCS=1 cargo test -p libriassist reference`.
    #[test]
    fn operations_guide_matches_the_generated_reference() {
        let doc = std::fs::read_to_string(DOC).expect("read docs/OPERATIONS.md");
        let (Some(start), Some(end)) = (doc.find(START), doc.find(END)) else {
            panic!("docs/OPERATIONS.md lacks the {START:?} and {END:?} markers");
        };
        let generated = reference();
        let current = &doc[start + START.len()..end];
        if current == generated {
            return;
        }
        if std::env::var_os("LIBRIASSIST_UPDATE_DOCS").is_some() {
            let updated = format!("{}{generated}{}", &doc[..start + START.len()], &doc[end..]);
            std::fs::write(DOC, updated).expect("write docs/OPERATIONS.md");
            return;
        }
        panic!(
            "the configuration reference in docs/OPERATIONS.md is out of date; regenerate it with \
             LIBRIASSIST_UPDATE_DOCS=1 cargo test -p libriassist reference\n--- generated:\n{generated}"
        );
    }
}
