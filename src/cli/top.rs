//! `coolbeans top`: a live view of any beanstalkd-protocol server, beanstalkd itself included.
//! Each second it looks at the server (`poll`), works out rates against the look before
//! (`stats`), and draws the screen (`screen`, a pure function) on the terminal (`terminal`),
//! until q or Ctrl-C. A server that stops answering is shown as such and tried again.

mod poll;
mod screen;
mod stats;
mod terminal;

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use tokio::sync::mpsc;
use tokio::time::Instant;

use screen::{Seen, SortBy, View};
use stats::{Rates, Sample};
use terminal::{Input, Terminal};

/// How often `top` looks at the server.
const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Args, Debug, Clone)]
pub struct TopArgs {
    /// The server: HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:11300")]
    pub addr: String,
    /// The order of the tubes (s switches it while running).
    #[arg(long, value_enum, default_value = "name")]
    pub sort: SortBy,
}

/// The last look that succeeded, with the rates against the one before it.
struct Shown {
    sample: Sample,
    at: Instant,
    tube_rates: BTreeMap<String, Rates>,
    server_rates: Rates,
}

/// What the looks have found so far.
#[derive(Default)]
struct Found {
    shown: Option<Shown>,
    /// Why the latest looks failed, and when the first of them did.
    problem: Option<(String, Instant)>,
}

impl Found {
    fn take(&mut self, (result, at): poll::Look) {
        match result {
            Ok(sample) => {
                let (tube_rates, server_rates) = match &self.shown {
                    Some(before) => {
                        let secs = at.duration_since(before.at).as_secs_f64();
                        (stats::tube_rates(&before.sample, &sample, secs), stats::server_rates(&before.sample.server, &sample.server, secs))
                    }
                    None => (BTreeMap::new(), Rates::default()),
                };
                self.shown = Some(Shown { sample, at, tube_rates, server_rates });
                self.problem = None;
            }
            Err(why) => {
                let since = self.problem.take().map_or(at, |(_, since)| since);
                self.problem = Some((why, since));
            }
        }
    }

    fn view<'a>(&'a self, addr: &'a str, sort: SortBy, now: Instant) -> View<'a> {
        let seen = self.shown.as_ref().map(|s| Seen { sample: &s.sample, tube_rates: &s.tube_rates, server_rates: s.server_rates });
        let problem = self.problem.as_ref().map(|(why, since)| (why.as_str(), now.duration_since(*since).as_secs()));
        View { addr, seen, problem, sort }
    }
}

pub async fn run(args: TopArgs) -> Result<(), String> {
    let mut terminal = Terminal::enter()?;
    let mut inputs = terminal::inputs();
    let (looks_tx, mut looks) = mpsc::channel(1);
    let poller = tokio::spawn(poll::run(args.addr.clone(), INTERVAL, looks_tx));
    let (mut found, mut sort) = (Found::default(), args.sort);
    let outcome = loop {
        let (width, height) = terminal.size();
        let lines = screen::render(&found.view(&args.addr, sort, Instant::now()), width, height);
        if let Err(e) = terminal.draw(&lines) {
            break Err(e);
        }
        tokio::select! {
            input = inputs.recv() => match input {
                Some(Input::Quit) | None => break Ok(()),
                Some(Input::ToggleSort) => sort = sort.other(),
                Some(Input::Resized) => {}
            },
            look = looks.recv() => match look {
                Some(look) => found.take(look),
                None => break Err("the poller stopped".to_string()),
            },
        }
    };
    poller.abort();
    drop(terminal);
    outcome
}
