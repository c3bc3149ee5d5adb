//! The printed report: the lines on the run and the machine's limits, one
//! table (a row per measure, a column per engine, and Spool's ratio to the
//! best peer), the targets and a legend, as plain text or Markdown.

mod header;
mod legend;
mod targets;

use crate::engine::Engine;
use crate::limits::Limits;
use crate::results::{Results, SPOOL};
use crate::sizes::Sizes;
use crate::Workload;
use std::path::Path;
use std::time::Duration;

/// Everything the report shows.
pub struct Report<'a> {
    /// The figures.
    pub results: &'a Results,
    /// The engines, in column order.
    pub engines: &'a [Box<dyn Engine>],
    /// The workloads that ran.
    pub workloads: &'a [Workload],
    /// Their sizes.
    pub sizes: &'a Sizes,
    /// The machine's limits.
    pub limits: &'a Limits,
    /// `--scale`.
    pub scale: f64,
    /// `--runs`.
    pub runs: usize,
    /// Where the scratch directories were.
    pub dir: &'a Path,
    /// Time of the whole run so far.
    pub elapsed: Duration,
}

impl Report<'_> {
    /// Prints the report as plain text with an aligned table.
    pub fn print_text(&self) {
        for line in self.header() {
            println!("{line}");
        }
        println!();
        let table = self.table();
        let widths: Vec<usize> = (0..table[0].len())
            .map(|c| {
                table
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (i, row) in table.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, text)| {
                    if c == 0 {
                        format!("{text:<w$}", w = widths[c])
                    } else {
                        format!("{text:>w$}", w = widths[c])
                    }
                })
                .collect();
            println!("{}", cells.join("  ").trim_end());
            if i == 0 {
                let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
                println!("{}", "-".repeat(rule));
            }
        }
        let targets = self.targets();
        if !targets.is_empty() {
            println!();
            println!("Targets:");
            let w = targets.iter().map(|t| t.what.len()).max().unwrap_or(0);
            for t in &targets {
                println!(
                    "  {:<w$}  {:<7}  {}",
                    t.what,
                    if t.met { "met" } else { "NOT met" },
                    t.detail
                );
            }
        }
        println!();
        println!("Legend:");
        for line in self.legend() {
            println!("  - {line}");
        }
        println!();
        println!("Total run time: {:.0} s", self.elapsed.as_secs_f64());
    }

    /// Prints the report as Markdown: the header as a list, the table, the
    /// targets and the legend as lists.
    pub fn print_markdown(&self) {
        // Indented header lines become list items, the others paragraphs.
        let mut in_list = false;
        for line in self.header() {
            match line.strip_prefix("  ") {
                Some(item) => println!("- {item}"),
                None if in_list => println!("\n{line}\n"),
                None => println!("{line}\n"),
            }
            in_list = line.starts_with("  ");
        }
        println!();
        for (i, row) in self.table().iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            println!("| {} |", cells.join(" | "));
            if i == 0 {
                let rule: Vec<&str> = (0..row.len())
                    .map(|c| if c == 0 { "---" } else { "---:" })
                    .collect();
                println!("|{}|", rule.join("|"));
            }
        }
        let targets = self.targets();
        if !targets.is_empty() {
            println!();
            println!("Targets:");
            println!();
            for t in &targets {
                let verdict = if t.met { "met" } else { "**NOT met**" };
                println!("- {}: {verdict} ({})", t.what, t.detail);
            }
        }
        println!();
        for line in self.legend() {
            println!("- {line}");
        }
        println!();
        println!("Total run time: {:.0} s.", self.elapsed.as_secs_f64());
    }

    /// The table: a header row, then one row per measure.
    fn table(&self) -> Vec<Vec<String>> {
        let r = self.results;
        let with_ratio = self.engines.len() > 1 && r.names.contains(&SPOOL);
        let mut head = vec!["workload".to_string()];
        head.extend(self.engines.iter().map(|e| e.name().to_string()));
        if with_ratio {
            head.push("Spool / best peer".into());
        }
        let mut table = vec![head];
        for row in r.rows() {
            let mut line = vec![row.label(self.sizes, r.open_segments)];
            line.extend((0..self.engines.len()).map(|i| r.cell(row, i)));
            if with_ratio {
                line.push(r.ratio(row));
            }
            table.push(line);
        }
        table
    }
}
