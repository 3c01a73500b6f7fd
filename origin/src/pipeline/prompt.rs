//! Builds the chat messages sent to the model: the system prompt with the numbered passages,
//! as much recent history as fits the budget, and the question.

use super::Passage;
use crate::backends::{ChatMessage, MessageRole};
use libriassist_protocol::{ChatRequest, Role};

pub struct PromptBuilder {
    system_prompt: String,
    /// Characters of history kept, newest turns first; a rough token budget (a French token is
    /// about four characters) that keeps long conversations inside the model's context.
    history_budget_chars: usize,
}

impl PromptBuilder {
    pub fn new(system_prompt: String, history_budget_chars: usize) -> Self {
        PromptBuilder {
            system_prompt,
            history_budget_chars,
        }
    }

    pub fn build(&self, request: &ChatRequest, passages: &[Passage]) -> Vec<ChatMessage> {
        let mut system = self.system_prompt.clone();
        if !passages.is_empty() {
            system.push_str("\n\nPassages :");
            for (i, p) in passages.iter().enumerate() {
                system.push_str(&format!(
                    "\n[{}] {}\n{}",
                    i + 1,
                    p.source.title,
                    p.text.trim()
                ));
            }
        }
        let mut messages = vec![ChatMessage {
            role: MessageRole::System,
            content: system,
        }];

        let mut budget = self.history_budget_chars;
        let mut kept: Vec<ChatMessage> = Vec::new();
        for turn in request.history.iter().rev() {
            let len = turn.content.chars().count();
            if len > budget {
                break;
            }
            budget -= len;
            let role = match turn.role {
                Role::User => MessageRole::User,
                Role::Assistant => MessageRole::Assistant,
            };
            kept.push(ChatMessage {
                role,
                content: turn.content.clone(),
            });
        }
        messages.extend(kept.into_iter().rev());
        messages.push(ChatMessage {
            role: MessageRole::User,
            content: request.question.trim().to_owned(),
        });
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libriassist_protocol::{Source, Turn};

    fn turn(role: Role, content: &str) -> Turn {
        Turn {
            role,
            content: content.into(),
        }
    }

    #[test]
    fn system_passages_history_question() {
        let b = PromptBuilder::new("Réponds.".into(), 1000);
        let request = ChatRequest {
            question: " Et en poche ? ".into(),
            history: vec![
                turn(Role::User, "Germinal ?"),
                turn(Role::Assistant, "Oui, en grand format."),
            ],
            session_id: None,
        };
        let passages = vec![Passage {
            source: Source {
                id: "faq-1".into(),
                title: "Formats".into(),
                url: None,
                score: 1.0,
            },
            text: "Poche et grand format.".into(),
        }];
        let m = b.build(&request, &passages);
        assert_eq!(m.len(), 4);
        assert!(m[0].content.contains("[1] Formats\nPoche et grand format."));
        assert_eq!(
            (m[1].role, m[2].role, m[3].role),
            (MessageRole::User, MessageRole::Assistant, MessageRole::User)
        );
        assert_eq!(m[3].content, "Et en poche ?");
    }

    #[test]
    fn history_keeps_the_newest_turns_within_budget() {
        let b = PromptBuilder::new("S".into(), 12);
        let request = ChatRequest {
            question: "q".into(),
            history: vec![
                turn(Role::User, "aaaaaaaaaa"),
                turn(Role::Assistant, "bbbbb"),
                turn(Role::User, "ccccc"),
            ],
            session_id: None,
        };
        let m = b.build(&request, &[]);
        let contents: Vec<&str> = m.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents, ["S", "bbbbb", "ccccc", "q"]);
    }
}
