//! Progress of a long wait, for a person at a terminal: a spinner (or a bar) on stderr that
//! says what is awaited and for how long. When stderr is not a terminal nothing is drawn, so
//! pipes and logs get exactly what they got before.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A spinner with `message` and the seconds waited so far.
    pub fn spinner(message: impl Into<String>) -> Self {
        let bar = ProgressBar::with_draw_target(None, target());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar }
    }

    /// A bar of `total` steps.
    pub fn bar(total: u64, message: impl Into<String>) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), target());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress { bar }
    }

    /// True when it is drawn (stderr is a terminal): callers then skip their plain lines.
    pub fn shown() -> bool {
        std::io::stderr().is_terminal()
    }

    pub fn set_message(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
    }

    pub fn set_position(&self, position: u64) {
        self.bar.set_position(position);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn target() -> ProgressDrawTarget {
    if Progress::shown() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
