//! Publisher-confirm bookkeeping for one channel.
//!
//! Confirms may acknowledge one tag or every tag up to one (`multiple`), and
//! single confirms may arrive out of order, so a plain "highest tag" counter
//! would overcount. The window holds one flag per tag from the oldest
//! unconfirmed one; it never grows beyond the outstanding-confirm bound.

use std::collections::VecDeque;

/// Which of the published tags have been settled (acked or nacked).
#[derive(Default)]
pub struct ConfirmWindow {
    /// Tag of `settled[0]`; tags start at 1.
    base: u64,
    settled: VecDeque<bool>,
    count: u64,
}

impl ConfirmWindow {
    /// An empty window expecting tag 1 first.
    pub fn new() -> Self {
        ConfirmWindow {
            base: 1,
            ..Default::default()
        }
    }

    /// Settles `tag`, or every tag up to it when `multiple`; returns how many
    /// tags this newly settled.
    pub fn settle(&mut self, tag: u64, multiple: bool) -> u64 {
        if tag < self.base {
            return 0;
        }
        let offset = (tag - self.base) as usize;
        if self.settled.len() <= offset {
            self.settled.resize(offset + 1, false);
        }
        let first = if multiple { 0 } else { offset };
        let mut newly = 0;
        for flag in self.settled.range_mut(first..=offset) {
            if !*flag {
                *flag = true;
                newly += 1;
            }
        }
        while self.settled.front() == Some(&true) {
            self.settled.pop_front();
            self.base += 1;
        }
        self.count += newly;
        newly
    }

    /// Tags settled so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_singles_out_of_order_and_multiples_once() {
        let mut w = ConfirmWindow::new();
        assert_eq!(w.settle(3, false), 1);
        assert_eq!(w.settle(1, false), 1);
        assert_eq!(w.settle(5, true), 3);
        assert_eq!(w.settle(4, false), 0);
        assert_eq!(w.settle(5, true), 0);
        assert_eq!(w.settle(6, false), 1);
        assert_eq!(w.count(), 6);
        assert!(w.settled.is_empty());
        assert_eq!(w.base, 7);
    }
}
