//! `top`'s screen as lines of text: what the last look at the server found, or why the latest
//! failed. Pure: the view and the screen's size in, lines out, each at most the screen's width
//! and no more lines than its height; the tubes that do not fit are counted in the last line.

use std::collections::BTreeMap;

use super::stats::{Rates, Sample, TubeStats};
use crate::cli::table::{self, Align};

/// The order of the tubes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    /// By name.
    Name,
    /// The busiest first: puts and deletes per second, then jobs held, then name.
    Activity,
}

impl SortBy {
    pub fn other(self) -> SortBy {
        match self {
            SortBy::Name => SortBy::Activity,
            SortBy::Activity => SortBy::Name,
        }
    }
}

/// A sample shown, with its rates against the one before it.
pub struct Seen<'a> {
    pub sample: &'a Sample,
    pub tube_rates: &'a BTreeMap<String, Rates>,
    pub server_rates: Rates,
}

/// Everything the screen shows.
pub struct View<'a> {
    pub addr: &'a str,
    /// The last sample the server answered, if any yet.
    pub seen: Option<Seen<'a>>,
    /// Why the latest looks failed, and for how many seconds they have.
    pub problem: Option<(&'a str, u64)>,
    pub sort: SortBy,
}

/// Lines above the tubes: the server, its totals, the connection's state, the table's header.
const HEAD_LINES: usize = 4;

/// The screen for `view` on a terminal of `width` columns and `height` rows.
pub fn render(view: &View, width: usize, height: usize) -> Vec<String> {
    let mut lines = vec![title(view), totals(view), state(view)];
    let tube_rows_max = height.saturating_sub(HEAD_LINES + 1);
    let tubes = view.seen.as_ref().map_or(Vec::new(), |seen| sorted(seen, view.sort));
    let shown = &tubes[..tubes.len().min(tube_rows_max)];
    let no_rates = BTreeMap::new();
    let rates = view.seen.as_ref().map_or(&no_rates, |seen| seen.tube_rates);
    let header = ["TUBE", "READY", "RESERVED", "DELAYED", "BURIED", "WAITING", "PUT/S", "DELETE/S"];
    let mut rows = vec![header.map(String::from).to_vec()];
    rows.extend(shown.iter().map(|t| tube_row(t, rates.get(&t.name).copied().unwrap_or_default())));
    use Align::{Left, Right};
    lines.extend(table::lines(&[Left, Right, Right, Right, Right, Right, Right, Right], &rows));
    lines.push(footer(view.sort, tubes.len() - shown.len()));
    lines.truncate(height);
    lines.iter().map(|line| line.chars().take(width).collect()).collect()
}

fn title(view: &View) -> String {
    let Some(seen) = &view.seen else { return format!("coolbeans top  {}", view.addr) };
    let s = &seen.sample.server;
    format!("coolbeans top  {}  version {}  up {}  {} connections", view.addr, s.version, uptime(s.uptime_secs), s.connections)
}

fn totals(view: &View) -> String {
    let Some(seen) = &view.seen else { return String::new() };
    let s = &seen.sample.server;
    format!(
        "jobs: {} ready  {} reserved  {} delayed  {} buried    puts {}/s  deletes {}/s",
        s.jobs.ready,
        s.jobs.reserved,
        s.jobs.delayed,
        s.jobs.buried,
        per_second(seen.server_rates.puts),
        per_second(seen.server_rates.deletes)
    )
}

fn state(view: &View) -> String {
    match (&view.problem, &view.seen) {
        (None, Some(_)) => String::new(),
        (None, None) => format!("connecting to {}...", view.addr),
        (Some((why, secs)), seen) => {
            let counts = if seen.is_some() { "; the counts below are the last it gave" } else { "" };
            format!("NOT ANSWERING for {secs} s, retrying each second: {why}{counts}")
        }
    }
}

fn footer(sort: SortBy, hidden: usize) -> String {
    let (order, key) = match sort {
        SortBy::Name => ("by name", "s: sort by activity"),
        SortBy::Activity => ("by activity", "s: sort by name"),
    };
    let more = if hidden > 0 { format!("+{hidden} more tubes  ") } else { String::new() };
    format!("{more}sorted {order}    {key}  q: quit")
}

fn sorted<'a>(seen: &Seen<'a>, sort: SortBy) -> Vec<&'a TubeStats> {
    let mut tubes: Vec<&TubeStats> = seen.sample.tubes.iter().collect();
    match sort {
        SortBy::Name => tubes.sort_by(|a, b| a.name.cmp(&b.name)),
        SortBy::Activity => {
            let activity = |t: &TubeStats| {
                let r = seen.tube_rates.get(&t.name).copied().unwrap_or_default();
                r.puts.unwrap_or(0.0) + r.deletes.unwrap_or(0.0)
            };
            let held = |t: &TubeStats| t.jobs.total() + t.waiting;
            tubes.sort_by(|a, b| activity(b).total_cmp(&activity(a)).then(held(b).cmp(&held(a))).then(a.name.cmp(&b.name)));
        }
    }
    tubes
}

fn tube_row(t: &TubeStats, rates: Rates) -> Vec<String> {
    let j = &t.jobs;
    let counts = [j.ready, j.reserved, j.delayed, j.buried, t.waiting].map(|n| n.to_string());
    let mut row = vec![t.name.clone()];
    row.extend(counts);
    row.push(per_second(rates.puts));
    row.push(per_second(rates.deletes));
    row
}

fn per_second(rate: Option<f64>) -> String {
    rate.map_or("-".to_string(), |r| format!("{r:.1}"))
}

fn uptime(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3_599 => format!("{}m {}s", secs / 60, secs % 60),
        3_600..=86_399 => format!("{}h {}m", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

#[cfg(test)]
mod tests {
    use super::super::stats::{JobCounts, ServerStats};
    use super::*;

    fn tube(name: &str, ready: u64, reserved: u64, waiting: u64) -> TubeStats {
        let jobs = JobCounts { ready, reserved, ..JobCounts::default() };
        TubeStats { name: name.into(), jobs, waiting, ..TubeStats::default() }
    }

    fn sample() -> Sample {
        let server = ServerStats { version: "1.13".into(), uptime_secs: 3_725, connections: 4, ..ServerStats::default() };
        let server = ServerStats { jobs: JobCounts { ready: 12, reserved: 1, ..JobCounts::default() }, ..server };
        Sample { server, tubes: vec![tube("default", 0, 0, 2), tube("emails", 2, 1, 0), tube("audio", 10, 0, 0)] }
    }

    fn rates() -> BTreeMap<String, Rates> {
        let r = |puts, deletes| Rates { puts: Some(puts), deletes: Some(deletes) };
        BTreeMap::from([("default".to_string(), r(0.0, 0.0)), ("emails".to_string(), r(25.0, 24.5)), ("audio".to_string(), Rates::default())])
    }

    fn view<'a>(sample: &'a Sample, rates: &'a BTreeMap<String, Rates>, sort: SortBy) -> View<'a> {
        let server_rates = Rates { puts: Some(25.0), deletes: Some(24.5) };
        View { addr: "127.0.0.1:11300", seen: Some(Seen { sample, tube_rates: rates, server_rates }), problem: None, sort }
    }

    /// By name, every tube fits: the server line, its totals, a row per tube, the keys.
    #[test]
    fn tubes_by_name() {
        let (sample, rates) = (sample(), rates());
        let expected = [
            "coolbeans top  127.0.0.1:11300  version 1.13  up 1h 2m  4 connections",
            "jobs: 12 ready  1 reserved  0 delayed  0 buried    puts 25.0/s  deletes 24.5/s",
            "",
            "TUBE     READY  RESERVED  DELAYED  BURIED  WAITING  PUT/S  DELETE/S",
            "audio       10         0        0       0        0      -         -",
            "default      0         0        0       0        2    0.0       0.0",
            "emails       2         1        0       0        0   25.0      24.5",
            "sorted by name    s: sort by activity  q: quit",
        ];
        assert_eq!(render(&view(&sample, &rates, SortBy::Name), 120, 40), expected);
    }

    /// By activity the busiest tube comes first, then the one holding most; a short screen
    /// keeps the head and counts the tubes left out; a narrow one cuts every line.
    #[test]
    fn tubes_by_activity_on_a_small_screen() {
        let (sample, rates) = (sample(), rates());
        let lines = render(&view(&sample, &rates, SortBy::Activity), 30, 7);
        assert_eq!(lines.len(), 7);
        assert!(lines.iter().all(|l| l.chars().count() <= 30));
        assert!(lines[4].starts_with("emails "), "{lines:?}");
        assert!(lines[5].starts_with("audio "), "{lines:?}");
        assert_eq!(lines[6], "+1 more tubes  sorted by activ");
    }

    /// A server that stopped answering: how long, why, and the last counts stay on screen.
    #[test]
    fn a_server_that_went_away() {
        let (sample, rates) = (sample(), rates());
        let mut v = view(&sample, &rates, SortBy::Name);
        v.problem = Some(("connect to 127.0.0.1:11300: Connection refused", 5));
        let lines = render(&v, 200, 40);
        assert_eq!(
            lines[2],
            "NOT ANSWERING for 5 s, retrying each second: connect to 127.0.0.1:11300: Connection refused; the counts below are the last it gave"
        );
        assert!(lines[4].starts_with("audio "));
    }

    /// Before the first answer: where it is connecting, or why it cannot, and no tubes.
    #[test]
    fn before_the_first_answer() {
        let mut v = View { addr: "h:1", seen: None, problem: None, sort: SortBy::Name };
        let lines = render(&v, 80, 24);
        assert_eq!(lines[..3], ["coolbeans top  h:1", "", "connecting to h:1..."]);
        assert_eq!(lines.len(), 5);
        v.problem = Some(("refused", 2));
        assert_eq!(render(&v, 80, 24)[2], "NOT ANSWERING for 2 s, retrying each second: refused");
    }
}
