//! Progress of the long admin commands (`seed-keys`, `migrate-store`, `backup`, `restore`,
//! `rotate-root-key`): a bar on standard error when it is a terminal (indicatif), plain lines
//! otherwise (`<label>: 1200/5000 (24%)`, at most one every [`LINE_EVERY`], and one at the
//! end), so logs of a job runner show that the command is alive without control characters.
//!
//! ```no_run
//! let p = kms::progress::Progress::new("Copying keys", 5000);
//! for _ in 0..5 {
//!     p.inc(1000);
//! }
//! p.finish();
//! ```
//!
//! A `Progress` is cheap to clone and can be moved to other threads; every clone moves the
//! same counter.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the plain form prints a line while the count moves.
pub const LINE_EVERY: Duration = Duration::from_secs(2);

/// What the counter counts (changes only how it is shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Items,
    Bytes,
}

/// One operation's progress.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    label: String,
    unit: Unit,
    bar: Option<ProgressBar>,
    plain: Mutex<Plain>,
}

struct Plain {
    position: u64,
    total: u64,
    last_line: Instant,
    finished: bool,
}

impl Progress {
    /// Progress over `total` items (0 when unknown: the count alone is shown).
    pub fn new(label: &str, total: u64) -> Self {
        Self::build(label, total, Unit::Items, std::io::stderr().is_terminal())
    }

    /// Progress over `total` bytes (shown as KiB/MiB/GiB).
    pub fn bytes(label: &str, total: u64) -> Self {
        Self::build(label, total, Unit::Bytes, std::io::stderr().is_terminal())
    }

    /// Progress that never shows anything (tests, `--quiet`).
    pub fn hidden() -> Self {
        let p = Self::build("", 0, Unit::Items, false);
        if let Ok(mut plain) = p.inner.plain.lock() {
            plain.finished = true;
        }
        p
    }

    fn build(label: &str, total: u64, unit: Unit, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(
                (total > 0).then_some(total),
                ProgressDrawTarget::stderr(),
            );
            let template = match (unit, total > 0) {
                (Unit::Items, true) => {
                    "{msg}: [{bar:40}] {human_pos}/{human_len} ({percent}%, {eta} left)"
                }
                (Unit::Bytes, true) => {
                    "{msg}: [{bar:40}] {bytes}/{total_bytes} ({percent}%, {eta} left)"
                }
                (Unit::Items, false) => "{msg}: {human_pos} ({elapsed})",
                (Unit::Bytes, false) => "{msg}: {bytes} ({elapsed})",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            inner: Arc::new(Inner {
                label: label.to_string(),
                unit,
                bar,
                plain: Mutex::new(Plain {
                    position: 0,
                    total,
                    last_line: Instant::now(),
                    finished: false,
                }),
            }),
        }
    }

    /// Moves the counter on by `n`.
    pub fn inc(&self, n: u64) {
        self.update(|p| p.position = p.position.saturating_add(n));
    }

    /// Sets the counter to `position` (e.g. bytes written so far).
    pub fn set_position(&self, position: u64) {
        self.update(|p| p.position = position);
    }

    /// Changes the total (when it becomes known late).
    pub fn set_total(&self, total: u64) {
        if let Some(bar) = &self.inner.bar {
            bar.set_length(total);
        }
        let mut plain = self
            .inner
            .plain
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        plain.total = total;
    }

    /// Ends the operation: the bar stays on screen at its last position; the plain form
    /// prints its last line. Further calls do nothing.
    pub fn finish(&self) {
        let mut plain = self
            .inner
            .plain
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if plain.finished {
            return;
        }
        plain.finished = true;
        match &self.inner.bar {
            Some(bar) => {
                bar.finish();
                // The bar leaves the cursor at its end: what is printed next starts on a new
                // line.
                eprintln!();
            }
            None => eprintln!("{} (done)", self.line(&plain)),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Plain)) {
        let mut plain = self
            .inner
            .plain
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut plain);
        if let Some(bar) = &self.inner.bar {
            bar.set_position(plain.position);
            return;
        }
        if !plain.finished && plain.last_line.elapsed() >= LINE_EVERY {
            plain.last_line = Instant::now();
            eprintln!("{}", self.line(&plain));
        }
    }

    /// The plain form's line.
    fn line(&self, p: &Plain) -> String {
        let show = |n: u64| match self.inner.unit {
            Unit::Items => n.to_string(),
            Unit::Bytes => indicatif::HumanBytes(n).to_string(),
        };
        if p.total == 0 {
            format!("{}: {}", self.inner.label, show(p.position))
        } else {
            format!(
                "{}: {}/{} ({}%)",
                self.inner.label,
                show(p.position),
                show(p.total),
                p.position.min(p.total) * 100 / p.total
            )
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A bar left unfinished (an error) is cleared so the error message starts on a clean
        // line.
        if let Some(bar) = &self.bar {
            if !bar.is_finished() {
                bar.finish_and_clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_show_position_total_and_percent() {
        let p = Progress::build("Copying", 200, Unit::Items, false);
        p.inc(50);
        let plain = p.inner.plain.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(p.line(&plain), "Copying: 50/200 (25%)");
        drop(plain);
        let b = Progress::build("Writing", 0, Unit::Bytes, false);
        b.set_position(2048);
        let plain = b.inner.plain.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(b.line(&plain), "Writing: 2.00 KiB");
    }

    #[test]
    fn clones_share_the_counter_and_finish_once() {
        let p = Progress::hidden();
        let q = p.clone();
        p.inc(3);
        q.inc(4);
        assert_eq!(
            p.inner
                .plain
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .position,
            7
        );
        p.finish();
        q.finish();
    }
}
