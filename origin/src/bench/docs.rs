//! Puts a run's tables into a hand-written Markdown file. Only the text between a
//! `<!-- bench:NAME -->` line and its `<!-- /bench:NAME -->` line is replaced, so the prose
//! around the numbers, and every section other people write in the same file, stay as they
//! are; a block whose markers are missing is left out and named, never appended somewhere.

use std::path::Path;

/// Replaces the named blocks in `text`; returns the new text and the names without markers.
pub fn fill(text: &str, blocks: &[(String, String)]) -> (String, Vec<String>) {
    let mut out = text.to_owned();
    let mut missing = Vec::new();
    for (name, body) in blocks {
        let open = format!("<!-- bench:{name} -->");
        let close = format!("<!-- /bench:{name} -->");
        let (Some(start), Some(end)) = (out.find(&open), out.find(&close)) else {
            missing.push(name.clone());
            continue;
        };
        if end < start {
            missing.push(name.clone());
            continue;
        }
        let inner_start = start + open.len();
        let body = body.trim_end();
        out.replace_range(inner_start..end, &format!("\n{body}\n"));
    }
    (out, missing)
}

/// Rewrites the blocks of the file at `path`, reading it just before writing (others edit the
/// same file) and replacing it in one rename.
///
/// # Errors
/// When the file cannot be read or written.
pub fn update(path: &Path, blocks: &[(String, String)]) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (new, missing) = fill(&text, blocks);
    if new != text {
        let tmp = path.with_extension("md.bench-tmp");
        std::fs::write(&tmp, new).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_marked_text_changes() {
        let text = "# Caches\nwritten by someone else\n\n## Load\nprose\n<!-- bench:load -->\nold table\n<!-- /bench:load -->\nmore prose\n";
        let (out, missing) = fill(
            text,
            &[
                ("load".into(), "| new |\n".into()),
                ("chaos".into(), "x".into()),
            ],
        );
        assert_eq!(out, "# Caches\nwritten by someone else\n\n## Load\nprose\n<!-- bench:load -->\n| new |\n<!-- /bench:load -->\nmore prose\n");
        assert_eq!(missing, ["chaos"]);
        let (again, _) = fill(&out, &[("load".into(), "| new |\n".into())]);
        assert_eq!(again, out, "idempotent");
    }
}
