//! Spreading node work over k node sets to minimise the makespan (the longest set's work).
//! Jobs are indivisible (a server launch with its patterns, a tool step); a set does some
//! work once however many of its jobs need it (a service start). The schedule is
//! longest-processing-time first, then improvement moves between the longest set and the
//! others (move one job, or swap two) until none shortens the longest set. Ties always go
//! to the lowest index, so the same jobs give the same sets.

/// One indivisible piece of node work.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub seconds: f64,
    /// Shared work it needs on its set (indices into `Problem::shared`).
    pub needs: Vec<usize>,
}

/// The jobs, and the shared work (seconds each) a set does once for all its jobs that need it.
#[derive(Clone, Copy, Debug)]
pub struct Problem<'a> {
    pub jobs: &'a [Job],
    pub shared: &'a [f64],
}

/// Which jobs each set runs (job indices ascending, the order they were given in) and its load.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    pub sets: Vec<Vec<usize>>,
    pub loads: Vec<f64>,
}

impl Assignment {
    /// The longest set's work.
    pub fn makespan(&self) -> f64 {
        self.loads.iter().copied().fold(0.0, f64::max)
    }
}

/// Below this a change of load is rounding, not an improvement (seconds).
const EPSILON: f64 = 1e-6;

/// No schedule can be shorter than its longest job, nor than the work shared evenly
/// (each shared piece counted once, its least).
pub fn lower_bound(p: Problem, k: usize) -> f64 {
    let own = |j: &Job| j.seconds + j.needs.iter().map(|&s| p.shared[s]).sum::<f64>();
    let longest = p.jobs.iter().map(own).fold(0.0, f64::max);
    let used: f64 = (0..p.shared.len()).filter(|s| p.jobs.iter().any(|j| j.needs.contains(s))).map(|s| p.shared[s]).sum();
    let total = p.jobs.iter().map(|j| j.seconds).sum::<f64>() + used;
    longest.max(total / k.max(1) as f64)
}

/// The best schedule found on `k` sets: LPT, then improvement moves.
pub fn assign(p: Problem, k: usize) -> Assignment {
    let mut state = State::new(p, k);
    state.lpt();
    state.improve();
    state.finish()
}

/// Longest-processing-time first alone (kept for comparison).
pub fn lpt(p: Problem, k: usize) -> Assignment {
    let mut state = State::new(p, k);
    state.lpt();
    state.finish()
}

/// A move the improvement phase can make: job to another set, or two jobs exchanged.
#[derive(Clone, Copy)]
enum Move {
    To { job: usize, set: usize },
    Swap { job: usize, with: usize, set: usize },
}

struct State<'a> {
    p: Problem<'a>,
    sets: Vec<Vec<usize>>,
    loads: Vec<f64>,
    /// How many jobs of each set need each shared piece.
    counts: Vec<Vec<u32>>,
}

impl<'a> State<'a> {
    fn new(p: Problem<'a>, k: usize) -> State<'a> {
        let k = k.max(1);
        State { p, sets: vec![vec![]; k], loads: vec![0.0; k], counts: vec![vec![0; p.shared.len()]; k] }
    }

    /// The load of `set` once `out` leaves it and `into` joins it.
    fn load_after(&self, set: usize, out: Option<usize>, into: Option<usize>) -> f64 {
        let needs = |j: Option<usize>| j.map(|j| self.p.jobs[j].needs.as_slice()).unwrap_or(&[]);
        let (gone, came) = (needs(out), needs(into));
        let mut load =
            self.loads[set] - out.map_or(0.0, |j| self.p.jobs[j].seconds) + into.map_or(0.0, |j| self.p.jobs[j].seconds);
        for (i, &s) in gone.iter().chain(came).enumerate() {
            if i >= gone.len() && gone.contains(&s) {
                continue; // counted with `gone`
            }
            let before = self.counts[set][s];
            let after = before + u32::from(came.contains(&s)) - u32::from(gone.contains(&s));
            match (before > 0, after > 0) {
                (true, false) => load -= self.p.shared[s],
                (false, true) => load += self.p.shared[s],
                _ => {}
            }
        }
        load
    }

    fn put(&mut self, job: usize, set: usize) {
        self.loads[set] = self.load_after(set, None, Some(job));
        for &s in &self.p.jobs[job].needs {
            self.counts[set][s] += 1;
        }
        self.sets[set].push(job);
    }

    fn take(&mut self, job: usize, set: usize) {
        self.loads[set] = self.load_after(set, Some(job), None);
        for &s in &self.p.jobs[job].needs {
            self.counts[set][s] -= 1;
        }
        self.sets[set].retain(|&j| j != job);
    }

    /// Longest first, each onto the set it leaves shortest.
    fn lpt(&mut self) {
        let mut order: Vec<usize> = (0..self.p.jobs.len()).collect();
        order.sort_by(|&a, &b| self.p.jobs[b].seconds.total_cmp(&self.p.jobs[a].seconds).then(a.cmp(&b)));
        for job in order {
            let set = (0..self.sets.len())
                .map(|s| (s, self.load_after(s, None, Some(job))))
                .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
                .map_or(0, |(s, _)| s);
            self.put(job, set);
        }
    }

    /// The move that leaves the longest set and its partner shortest, if it beats the longest set now.
    fn best_move(&self, long: usize) -> Option<Move> {
        let mut best: Option<(f64, Move)> = None;
        let mut consider = |value: f64, m: Move| {
            if value < self.loads[long] - EPSILON && best.is_none_or(|(b, _)| value < b - EPSILON) {
                best = Some((value, m));
            }
        };
        for &job in &self.sets[long] {
            for set in (0..self.sets.len()).filter(|&s| s != long) {
                let value = self.load_after(long, Some(job), None).max(self.load_after(set, None, Some(job)));
                consider(value, Move::To { job, set });
                for &with in &self.sets[set] {
                    let value = self.load_after(long, Some(job), Some(with)).max(self.load_after(set, Some(with), Some(job)));
                    consider(value, Move::Swap { job, with, set });
                }
            }
        }
        best.map(|(_, m)| m)
    }

    /// Each move lowers the longest set's load with no set rising to it, so the loads sorted
    /// longest first fall lexicographically and the loop ends; the cap only guards rounding.
    fn improve(&mut self) {
        for _ in 0..10_000 {
            let long = (0..self.loads.len()).fold(0, |m, s| if self.loads[s] > self.loads[m] + EPSILON { s } else { m });
            match self.best_move(long) {
                None => return,
                Some(Move::To { job, set }) => {
                    self.take(job, long);
                    self.put(job, set);
                }
                Some(Move::Swap { job, with, set }) => {
                    self.take(job, long);
                    self.take(with, set);
                    self.put(job, set);
                    self.put(with, long);
                }
            }
        }
    }

    fn finish(mut self) -> Assignment {
        for s in &mut self.sets {
            s.sort_unstable();
        }
        Assignment { sets: self.sets, loads: self.loads }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(seconds: &[f64]) -> Vec<Job> {
        seconds.iter().map(|&s| Job { seconds: s, needs: vec![] }).collect()
    }

    fn problem(jobs: &[Job]) -> Problem<'_> {
        Problem { jobs, shared: &[] }
    }

    #[test]
    fn lpt_places_the_longest_first_onto_the_shortest_set() {
        let j = jobs(&[2.0, 7.0, 3.0, 5.0, 4.0]);
        let a = lpt(problem(&j), 2);
        // 7 -> set 0, 5 -> set 1, 4 -> set 1 (9), 3 -> set 0 (10), 2 -> set 1 (11).
        assert_eq!(a.sets, vec![vec![1, 2], vec![0, 3, 4]]);
        assert_eq!(a.loads, vec![10.0, 11.0]);
        assert_eq!(a.makespan(), 11.0);
    }

    #[test]
    fn improvement_moves_beat_plain_lpt_on_grahams_cases() {
        // Two sets: LPT gives {3,2,2} {3,2} = 7; {3,3} {2,2,2} = 6 is optimal.
        let j = jobs(&[3.0, 3.0, 2.0, 2.0, 2.0]);
        assert_eq!(lpt(problem(&j), 2).makespan(), 7.0);
        let a = assign(problem(&j), 2);
        assert_eq!(a.makespan(), 6.0);
        assert_eq!(a.sets, vec![vec![2, 3, 4], vec![0, 1]]);
        // Three sets: LPT gives 11; {5,4} {5,4} {3,3,3} = 9 is optimal.
        let j = jobs(&[5.0, 5.0, 4.0, 4.0, 3.0, 3.0, 3.0]);
        assert_eq!(lpt(problem(&j), 3).makespan(), 11.0);
        assert_eq!(assign(problem(&j), 3).makespan(), 9.0);
    }

    #[test]
    fn the_bound_is_the_longest_job_or_the_work_shared_evenly() {
        let j = jobs(&[10.0, 1.0, 1.0]);
        assert_eq!(lower_bound(problem(&j), 2), 10.0);
        assert_eq!(assign(problem(&j), 2).makespan(), 10.0);
        let j = jobs(&[4.0, 4.0, 4.0, 4.0]);
        assert_eq!(lower_bound(problem(&j), 3), 16.0 / 3.0);
        assert_eq!(assign(problem(&j), 3).makespan(), 8.0);
    }

    /// Pseudo-random job lists (a fixed LCG): every job placed once, the bound never beaten,
    /// never worse than LPT, one set holds everything, and the same input gives the same sets.
    #[test]
    fn on_many_job_lists_the_schedule_respects_the_bound_and_is_deterministic() {
        let mut x: u64 = 18;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % 1000
        };
        for _ in 0..200 {
            let n = 1 + next() as usize % 15;
            let j: Vec<Job> = (0..n).map(|_| Job { seconds: 1.0 + next() as f64, needs: vec![] }).collect();
            let total: f64 = j.iter().map(|x| x.seconds).sum();
            for k in 1..=6 {
                let a = assign(problem(&j), k);
                let mut placed: Vec<usize> = a.sets.concat();
                placed.sort_unstable();
                assert_eq!(placed, (0..n).collect::<Vec<_>>());
                assert!(a.makespan() >= lower_bound(problem(&j), k) - 1e-9);
                assert!(a.makespan() <= lpt(problem(&j), k).makespan() + 1e-9);
                assert_eq!(a, assign(problem(&j), k));
                if k == 1 {
                    assert!((a.makespan() - total).abs() < 1e-9);
                }
            }
        }
    }

    #[test]
    fn shared_work_is_counted_once_per_set_that_needs_it() {
        // Four 10 s steps that need a 30 s service: on one set the service starts once.
        let j: Vec<Job> = (0..4).map(|_| Job { seconds: 10.0, needs: vec![0] }).collect();
        let p = Problem { jobs: &j, shared: &[30.0] };
        assert_eq!(assign(p, 1).makespan(), 70.0);
        // The bound: one job with its service (40 s) beats the work shared evenly (70 / 2).
        assert_eq!(lower_bound(p, 2), 40.0);
        // On two sets each starts it: 30 + 20 = 50 per set.
        let a = assign(p, 2);
        assert_eq!(a.loads, vec![50.0, 50.0]);
        // A job that needs nothing does not pay for it.
        let j = vec![Job { seconds: 10.0, needs: vec![0] }, Job { seconds: 5.0, needs: vec![] }];
        let p = Problem { jobs: &j, shared: &[30.0] };
        assert_eq!(assign(p, 2).loads, vec![40.0, 5.0]);
    }
}
