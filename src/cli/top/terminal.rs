//! The terminal `top` draws on, through crossterm: raw mode (keys arrive one at a time and
//! unechoed, Ctrl-C among them), the alternate screen (the shell's screen comes back on exit)
//! and a hidden cursor, all undone on drop. Keys are read by a thread of their own, since
//! crossterm's reads block.

use std::io::Write;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal::{self, ClearType};
use crossterm::{cursor, execute, queue, style};
use tokio::sync::mpsc;

/// What a key or the terminal asks of `top`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Quit,
    ToggleSort,
    /// The terminal changed size: draw again.
    Resized,
}

/// The terminal, set up for drawing until dropped.
pub struct Terminal {
    out: std::io::Stdout,
}

impl Terminal {
    pub fn enter() -> Result<Terminal, String> {
        terminal::enable_raw_mode().map_err(|e| format!("top needs a terminal: {e}"))?;
        let mut out = std::io::stdout();
        // From here on, dropping restores whatever was set.
        let entered = execute!(out, terminal::EnterAlternateScreen, cursor::Hide);
        let terminal = Terminal { out };
        entered.map_err(|e| format!("cannot set up the terminal: {e}"))?;
        Ok(terminal)
    }

    /// Columns and rows (80 by 24 if the terminal does not say).
    pub fn size(&self) -> (usize, usize) {
        terminal::size().map_or((80, 24), |(w, h)| (usize::from(w), usize::from(h)))
    }

    /// Replaces the screen with `lines` (no more than its rows), in one write.
    pub fn draw(&mut self, lines: &[String]) -> Result<(), String> {
        let (_, rows) = self.size();
        let mut draw = || -> std::io::Result<()> {
            for (row, line) in lines.iter().enumerate() {
                let row = u16::try_from(row).unwrap_or(u16::MAX);
                queue!(self.out, cursor::MoveTo(0, row), terminal::Clear(ClearType::CurrentLine), style::Print(line))?;
            }
            // Below the last line, if there is a below: moving past the last row stays on it.
            if lines.len() < rows {
                let below = u16::try_from(lines.len()).unwrap_or(u16::MAX);
                queue!(self.out, cursor::MoveTo(0, below), terminal::Clear(ClearType::FromCursorDown))?;
            }
            self.out.flush()
        };
        draw().map_err(|e| format!("cannot draw: {e}"))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = execute!(self.out, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

/// The inputs as they come. The reading thread ends at the first key after the receiver is
/// dropped (or with the process).
pub fn inputs() -> mpsc::UnboundedReceiver<Input> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            let input = match event {
                Event::Key(key) => input_of(key),
                Event::Resize(..) => Some(Input::Resized),
                _ => None,
            };
            if input.is_some_and(|input| tx.send(input).is_err()) {
                return;
            }
        }
    });
    rx
}

/// q, Esc and Ctrl-C quit; s changes the order.
fn input_of(key: KeyEvent) -> Option<Input> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    match key.code {
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Some(Input::Quit),
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => Some(Input::Quit),
        KeyCode::Char('s' | 'S') => Some(Input::ToggleSort),
        _ => None,
    }
}
