//! What happens to each event, the same for a live session and for a
//! recording read back: filter, count, aggregate, print.
use std::io;

use crate::{
    event::Event,
    filter::EventFilter,
    render::Printer,
    summary::{aggregate::Aggregator, aggregate::Totals, LimitsAtStartAndEnd, Summary},
    usage::diagnosis::Diagnosis,
};

/// Counts kept while streaming.
#[derive(Debug, Default)]
pub struct Tally {
    pub events: u64,
    pub failed: u64,
    pub lost: u64,
}

pub struct Pipeline<'a> {
    /// Where event lines go; `None` when only the summary is wanted.
    printer: Option<&'a mut dyn Printer>,
    filter: EventFilter,
    aggregator: Aggregator,
    diagnoses: Vec<Diagnosis>,
    pub tally: Tally,
}

impl<'a> Pipeline<'a> {
    pub fn new(printer: Option<&'a mut dyn Printer>, filter: EventFilter) -> Self {
        Pipeline {
            printer,
            filter,
            aggregator: Aggregator::default(),
            diagnoses: Vec::new(),
            tally: Tally::default(),
        }
    }

    /// Prints the column header, when events are printed.
    pub fn start(&mut self) -> io::Result<()> {
        match &mut self.printer {
            Some(printer) => printer.start(),
            None => Ok(()),
        }
    }

    pub fn event(&mut self, event: &Event<'_>) -> io::Result<()> {
        if !self.filter.matches(event) {
            return Ok(());
        }
        self.tally.events += 1;
        self.tally.failed += u64::from(event.header.ret < 0);
        self.aggregator.observe(event);
        match &mut self.printer {
            Some(printer) => printer.event(event),
            None => Ok(()),
        }
    }

    /// Counts lost events; returns whether they were printed (a caller that
    /// prints no events warns by itself).
    pub fn lost(&mut self, count: u64) -> io::Result<bool> {
        self.tally.lost += count;
        match &mut self.printer {
            Some(printer) => printer.lost(count).map(|()| true),
            None => Ok(false),
        }
    }

    /// Keeps a diagnosis for the summary; returns whether it was printed.
    pub fn diagnosis(&mut self, diagnosis: Diagnosis) -> io::Result<bool> {
        let printed = match &mut self.printer {
            Some(printer) => printer.diagnosis(&diagnosis).map(|()| true),
            None => Ok(false),
        };
        self.diagnoses.push(diagnosis);
        printed
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.printer {
            Some(printer) => printer.flush(),
            None => Ok(()),
        }
    }

    pub fn summary(
        &self,
        duration_s: f64,
        limits: LimitsAtStartAndEnd,
        clock: &crate::clock::WallClock,
        top: usize,
    ) -> Summary {
        let totals = Totals {
            duration_s,
            events: self.tally.events,
            lost: self.tally.lost,
        };
        let mut summary = self.aggregator.summary(&totals, limits, clock, top);
        summary.diagnoses = self.diagnoses.clone();
        summary
    }
}
