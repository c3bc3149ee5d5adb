//! The figures collected: the runs of each cell, the cells that do not
//! apply, and what the table reads from them (medians, the best peer,
//! Spool's ratio to it).

use crate::numbers::sig3;
use crate::row::Row;
use std::collections::BTreeMap;

/// Every figure measured: the runs of each cell, and the cells that do not
/// apply.
pub struct Results {
    /// The engines' names, in column order.
    pub names: Vec<&'static str>,
    values: BTreeMap<(Row, usize), Vec<f64>>,
    na: BTreeMap<(Row, usize), &'static str>,
    /// Segment files of the large store of O.
    pub open_segments: usize,
}

impl Results {
    /// No figures yet, for the engines named (in column order).
    pub fn new(names: Vec<&'static str>) -> Results {
        Results {
            names,
            values: BTreeMap::new(),
            na: BTreeMap::new(),
            open_segments: 0,
        }
    }

    /// Records one run's figure of `row` for engine number `engine`.
    pub fn add(&mut self, row: Row, engine: usize, v: f64) {
        self.values.entry((row, engine)).or_default().push(v);
    }

    /// Marks a cell as not applicable, with a short reason (or none).
    pub fn na(&mut self, row: Row, engine: usize, why: &'static str) {
        self.na.insert((row, engine), why);
    }

    /// The median of a cell's runs.
    fn get(&self, row: Row, engine: usize) -> Option<f64> {
        let mut v = self.values.get(&(row, engine))?.clone();
        Some(crate::median(&mut v))
    }

    /// A cell by engine name.
    pub fn get_named(&self, row: Row, name: &str) -> Option<f64> {
        let i = self.names.iter().position(|n| *n == name)?;
        self.get(row, i)
    }

    /// The rows that have anything, in table order.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .values
            .keys()
            .chain(self.na.keys())
            .map(|(r, _)| *r)
            .collect();
        rows.sort();
        rows.dedup();
        rows
    }

    /// The best peer of a row (highest figure) and its figure.
    pub fn best_peer(&self, row: Row) -> Option<(&'static str, f64)> {
        self.names
            .iter()
            .enumerate()
            .filter(|(_, n)| **n != SPOOL)
            .filter_map(|(i, n)| Some((*n, self.get(row, i)?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// A table cell.
    pub fn cell(&self, row: Row, engine: usize) -> String {
        if let Some(v) = self.get(row, engine) {
            return row.cell(v);
        }
        match self.na.get(&(row, engine)) {
            Some(&"") => "n/a".into(),
            Some(why) => format!("n/a ({why})"),
            None => "-".into(),
        }
    }

    /// The last column: Spool over the best peer.
    pub fn ratio(&self, row: Row) -> String {
        if !row.has_peers() {
            return "-".into();
        }
        match (self.get_named(row, SPOOL), self.best_peer(row)) {
            (Some(s), Some((name, p))) => format!("{}x ({name})", sig3(s / p)),
            _ => "-".into(),
        }
    }
}

/// Spool's column name.
pub const SPOOL: &str = "Spool";
