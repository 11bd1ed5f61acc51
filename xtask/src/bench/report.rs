//! The tables a scenario writes into BENCHMARKS.md: a row of timed runs with
//! its median and range, and the targets beside what a run measured.

use std::fmt::Write as _;

/// The targets beside what this run measured: (target, measured, met).
#[derive(Default)]
pub(super) struct Targets(Vec<(String, String, bool)>);

impl Targets {
    pub(super) fn add(&mut self, target: &str, measured: String, met: bool) {
        self.0.push((target.to_string(), measured, met));
    }
    pub(super) fn table(&self) -> String {
        let mut t = String::from("| target | measured | met |\n|---|---|---|\n");
        for (target, measured, met) in &self.0 {
            let _ = writeln!(
                t,
                "| {target} | {measured} | {} |",
                if *met { "yes" } else { "**no**" }
            );
        }
        t
    }
}

/// The middle value of `values` (the upper one of an even count).
fn median_of(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

#[derive(Clone)]
pub(super) struct Row {
    pub(super) tool: String,
    pub(super) command: String,
    /// Seconds per run.
    pub(super) runs: Vec<f64>,
    pub(super) work: f64,
    pub(super) unit: &'static str,
    pub(super) note: String,
    /// CPU seconds per run (all threads), where measured.
    pub(super) cpu: Vec<f64>,
}

impl Row {
    /// The median of [`Row::cpu`], if measured.
    pub(super) fn median_cpu(&self) -> Option<f64> {
        median_of(&self.cpu)
    }

    pub(super) fn median(&self) -> f64 {
        median_of(&self.runs).unwrap_or(f64::NAN)
    }
    /// `0.030 s (333.3 k bans/s; 300.1 k – 350.2 k)`: median and range.
    pub(super) fn rate_cell(&self) -> String {
        let min = self.runs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.runs.iter().copied().fold(0.0, f64::max);
        format!(
            "{:.3} s ({}; {} – {})",
            self.median(),
            human(self.work / self.median(), self.unit),
            human(self.work / max, self.unit),
            human(self.work / min, self.unit)
        )
    }
    pub(super) fn cells(&self) -> String {
        let rate = |s: f64| self.work / s;
        let min = self.runs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.runs.iter().copied().fold(0.0, f64::max);
        format!(
            "| {} | {} | {:.3} s | {} | {} – {} | {} | `{}` |",
            self.tool,
            self.runs.len(),
            self.median(),
            human(rate(self.median()), self.unit),
            human(rate(max), self.unit),
            human(rate(min), self.unit),
            self.note,
            self.command
        )
    }
}

pub(super) fn human(v: f64, unit: &str) -> String {
    if v >= 1e6 {
        format!("{:.2} M {unit}", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k {unit}", v / 1e3)
    } else {
        format!("{v:.0} {unit}")
    }
}
