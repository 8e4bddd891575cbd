//! The interactive SQL prompt: statements end with `;` and may span lines; `\d` lists
//! the tables, `\d TABLE` shows one, `\q`, `exit`, `quit` or end of input (Ctrl-D)
//! leave. A failing statement prints its error and the prompt goes on.
//!
//! On a terminal, lines are edited with rustyline and kept in a history file, and
//! Ctrl-C cancels a running statement; from a pipe or file, lines are read as they
//! come and nothing is echoed.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use super::{Format, QueryResult, SqlSession, write_result};

/// The prompt for a new statement.
const PROMPT: &str = "meshflow> ";
/// The prompt for a statement's further lines.
const CONTINUE: &str = "      ..> ";

/// What reading one line gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A line, without its line break.
    Text(String),
    /// Ctrl-C: drop the statement being typed.
    Interrupted,
    /// End of input (Ctrl-D).
    End,
}

/// Where the prompt's lines come from.
pub trait LineSource {
    /// Reads one line, showing `prompt` first if the source is interactive.
    fn read_line(&mut self, prompt: &str) -> anyhow::Result<Line>;
    /// Remembers a complete statement or command in the history, if there is one.
    fn add_history(&mut self, _entry: &str) {}
    /// What interrupts a running statement (Ctrl-C on a terminal), if anything: the
    /// statement is then cancelled and the prompt goes on.
    fn interrupt(&self) -> Option<Interrupt> {
        None
    }
}

/// A future that completes when the user interrupts a running statement.
pub type Interrupt = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Lines from a pipe or file (no prompt, no history).
pub struct Lines<R>(pub R);

impl<R: BufRead> LineSource for Lines<R> {
    fn read_line(&mut self, _prompt: &str) -> anyhow::Result<Line> {
        let mut line = String::new();
        if self.0.read_line(&mut line)? == 0 {
            return Ok(Line::End);
        }
        let trimmed = line.trim_end_matches(['\n', '\r']).len();
        line.truncate(trimmed);
        Ok(Line::Text(line))
    }
}

/// A line editor on the terminal, with its history saved to a file.
pub struct Terminal {
    editor: DefaultEditor,
    history: Option<PathBuf>,
}

impl Terminal {
    /// Opens the editor and loads the history from `history` (a missing file is fine).
    pub fn open(history: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut editor = DefaultEditor::new()?;
        if let Some(path) = &history
            && path.exists()
            && let Err(e) = editor.load_history(path)
        {
            crate::say!("warning: cannot read history {}: {e}", path.display());
        }
        Ok(Self { editor, history })
    }
}

impl LineSource for Terminal {
    fn read_line(&mut self, prompt: &str) -> anyhow::Result<Line> {
        match self.editor.readline(prompt) {
            Ok(line) => Ok(Line::Text(line)),
            Err(ReadlineError::Interrupted) => Ok(Line::Interrupted),
            Err(ReadlineError::Eof) => Ok(Line::End),
            Err(e) => Err(anyhow::anyhow!("reading the terminal: {e}")),
        }
    }

    fn add_history(&mut self, entry: &str) {
        let _ = self.editor.add_history_entry(entry);
    }

    fn interrupt(&self) -> Option<Interrupt> {
        // A line is read in raw mode, where Ctrl-C is a key; while a statement runs it
        // is a signal, which this catches instead of it ending the process.
        Some(Box::pin(async {
            let _ = tokio::signal::ctrl_c().await;
        }))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let Some(path) = &self.history else { return };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = self.editor.save_history(path) {
            crate::say!("warning: cannot save history {}: {e}", path.display());
        }
    }
}

/// The history file: `$XDG_STATE_HOME/meshflow/history` when `XDG_STATE_HOME` is set,
/// else `~/.meshflow_history`; `None` without either variable.
pub fn history_path() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(state) = var("XDG_STATE_HOME") {
        return Some(PathBuf::from(state).join("meshflow").join("history"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".meshflow_history"))
}

/// A prompt command (a line typed when no statement is open).
#[derive(Debug, PartialEq, Eq)]
enum Command<'a> {
    Quit,
    Tables,
    Describe(&'a str),
    Unknown(&'a str),
}

fn command(line: &str) -> Option<Command<'_>> {
    let line = line.trim();
    let word = line.trim_end_matches(';').trim();
    if word.eq_ignore_ascii_case("exit") || word.eq_ignore_ascii_case("quit") {
        return Some(Command::Quit);
    }
    let rest = line.strip_prefix('\\')?;
    let mut parts = rest.split_whitespace();
    Some(match (parts.next(), parts.next(), parts.next()) {
        (Some("q"), None, _) => Command::Quit,
        (Some("d"), None, _) => Command::Tables,
        (Some("d"), Some(table), None) => Command::Describe(table.trim_end_matches(';')),
        _ => Command::Unknown(line),
    })
}

/// Runs the prompt over `session` until `\q`, `exit`, `quit` or the end of `input`;
/// results go to `out` in `format` (table, csv or json), errors to `err`. A statement
/// still open at the end of input runs as if it ended with `;`. Returns how many
/// statements and commands failed, so a script piped in can fail as a whole.
pub fn run_prompt(
    session: &SqlSession,
    rt: &tokio::runtime::Runtime,
    format: Format,
    input: &mut dyn LineSource,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<usize> {
    anyhow::ensure!(
        !format.is_binary(),
        "the prompt prints its results; --format {format:?} needs a query and --output FILE"
    );
    let mut statement = String::new();
    let mut failed = 0;
    // Prints a result, or its error; says whether it failed.
    let show = |result: anyhow::Result<QueryResult>, out: &mut dyn Write, err: &mut dyn Write| {
        match result {
            Ok(result) => {
                write_result(&result, format, out)?;
                if format == Format::Table {
                    let n = result.rows();
                    writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" })?;
                }
                anyhow::Ok(0)
            }
            Err(e) => {
                writeln!(err, "error: {}", crate::error_text(&e))?;
                anyhow::Ok(1)
            }
        }
    };
    // Runs a statement until it ends or the input interrupts it.
    let run = |statement: &str, input: &dyn LineSource| {
        let interrupt = input.interrupt();
        rt.block_on(async {
            let Some(interrupt) = interrupt else {
                return session.run(statement).await;
            };
            tokio::select! {
                result = session.run(statement) => result,
                () = interrupt => Err(anyhow::anyhow!("statement cancelled (Ctrl-C)")),
            }
        })
    };
    loop {
        let prompt = if statement.is_empty() {
            PROMPT
        } else {
            CONTINUE
        };
        let line = match input.read_line(prompt)? {
            Line::Text(line) => line,
            Line::Interrupted => {
                statement.clear();
                continue;
            }
            Line::End => {
                if !statement.trim().is_empty() {
                    failed += show(run(&statement, input), out, err)?;
                }
                return Ok(failed);
            }
        };
        if statement.is_empty() {
            if line.trim().is_empty() {
                continue;
            }
            if let Some(cmd) = command(&line) {
                input.add_history(line.trim());
                match cmd {
                    Command::Quit => return Ok(failed),
                    Command::Tables => failed += show(session.list(), out, err)?,
                    Command::Describe(table) => {
                        failed += show(rt.block_on(session.describe(table)), out, err)?
                    }
                    Command::Unknown(text) => {
                        failed += 1;
                        writeln!(
                            err,
                            "error: unknown command `{text}`; use \\d, \\d TABLE or \\q"
                        )?
                    }
                }
                continue;
            }
        } else {
            statement.push('\n');
        }
        statement.push_str(&line);
        let (complete, rest) = split_statements(&statement);
        if !complete.is_empty() {
            input.add_history(statement.trim_end());
            for one in complete {
                failed += show(run(one, input), out, err)?;
            }
            statement = rest.trim_start().to_string();
        }
    }
}

/// Splits `text` at every `;` outside quotes and comments: the complete statements
/// (each with its `;`, empty ones left out) and what follows the last `;`.
pub fn split_statements(text: &str) -> (Vec<&str>, &str) {
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Code,
        Single,
        Double,
        LineComment,
        BlockComment,
    }
    let mut state = In::Code;
    let mut complete = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let next = bytes.get(i + 1).copied();
        match (state, bytes[i]) {
            (In::Code, b'\'') => state = In::Single,
            (In::Code, b'"') => state = In::Double,
            (In::Code, b'-') if next == Some(b'-') => state = In::LineComment,
            (In::Code, b'/') if next == Some(b'*') => {
                state = In::BlockComment;
                i += 1;
            }
            (In::Code, b';') => {
                let one = &text[start..=i];
                if !one.trim().trim_end_matches(';').trim().is_empty() {
                    complete.push(one.trim());
                }
                start = i + 1;
            }
            (In::Single, b'\'') => state = In::Code,
            (In::Double, b'"') => state = In::Code,
            (In::LineComment, b'\n') => state = In::Code,
            (In::BlockComment, b'*') if next == Some(b'/') => {
                state = In::Code;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    (complete, &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_recognised() {
        assert_eq!(command("\\q"), Some(Command::Quit));
        assert_eq!(command("  exit; "), Some(Command::Quit));
        assert_eq!(command("QUIT"), Some(Command::Quit));
        assert_eq!(command("\\d"), Some(Command::Tables));
        assert_eq!(
            command("\\d node_features;"),
            Some(Command::Describe("node_features"))
        );
        assert_eq!(command("\\x"), Some(Command::Unknown("\\x")));
        assert_eq!(command("SELECT 1;"), None);
        assert_eq!(command("exit_code"), None);
    }

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(
            split_statements("SELECT 1; SELECT 2;"),
            (vec!["SELECT 1;", "SELECT 2;"], "")
        );
        assert_eq!(
            split_statements("SELECT 'a;b', \"c;d\" -- e;f\n; SELECT /* ; */ 2"),
            (vec!["SELECT 'a;b', \"c;d\" -- e;f\n;"], " SELECT /* ; */ 2")
        );
        assert_eq!(
            split_statements("SELECT 'it''s;'; ;"),
            (vec!["SELECT 'it''s;';"], "")
        );
        assert_eq!(split_statements("SELECT 1"), (vec![], "SELECT 1"));
    }

    #[test]
    fn piped_lines_lose_their_line_breaks_and_end() {
        let mut lines = Lines("a\r\n\nb".as_bytes());
        let mut got = Vec::new();
        loop {
            match lines.read_line("> ").unwrap() {
                Line::End => break,
                line => got.push(line),
            }
        }
        assert_eq!(
            got,
            [
                Line::Text("a".into()),
                Line::Text(String::new()),
                Line::Text("b".into())
            ]
        );
    }

    #[test]
    fn history_follows_xdg_state_home() {
        // Read-only check of the rule on this process's environment.
        let path = history_path();
        match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            Some(state) => assert_eq!(path, Some(PathBuf::from(state).join("meshflow/history"))),
            None => {
                if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                    assert_eq!(path, Some(PathBuf::from(home).join(".meshflow_history")));
                }
            }
        }
    }
}
