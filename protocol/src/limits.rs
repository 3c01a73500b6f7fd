//! Input bounds, enforced identically at the edge and at the origin.

/// Largest accepted chat request body. A question plus a full history fits well below this.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest question, in characters (not bytes, so accented French is not penalised).
pub const MAX_QUESTION_CHARS: usize = 2_000;
/// Most history turns a request may carry.
pub const MAX_HISTORY_TURNS: usize = 32;
/// Longest content of one history turn, in characters.
pub const MAX_TURN_CHARS: usize = 8_000;
/// Longest session id, in characters.
pub const MAX_SESSION_ID_CHARS: usize = 128;
