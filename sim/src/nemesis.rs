//! The nemesis: during the fault phase, each fault kind the seed switched on fires at random
//! intervals around its mean (swarm testing) and, where a fault has an end (partition, crash,
//! pause), schedules its repair. Every injection is counted per kind for the summary and
//! written to the trace.

use std::collections::BTreeSet;

use rand::Rng;
use rand::seq::SliceRandom;

use zkr_jepsen::history::{Event, Kind, Phase};

use crate::net::{Addr, Partition};
use crate::sim::{CLIENT_ADDR_BASE, Ev, Sim};
use crate::swarm::FaultKind;

/// Largest factor a slow link multiplies delays by.
pub const SLOW_FACTOR_MAX: u64 = 20;

/// Longest pause of one node, ns (shorter than the liveness bound, so a pause running into the
/// liveness phase cannot by itself fail it).
pub const PAUSE_NS_MAX: u64 = 1_500_000_000;

impl Sim {
    pub(crate) fn nemesis(&mut self, kind: FaultKind) {
        if !self.in_fault_phase() {
            return;
        }
        let mean = self.swarm.fault_mean(kind).expect("only enabled kinds are scheduled");
        let next = self.now + self.rng.random_range(1..2 * mean);
        self.schedule(next, Ev::Nemesis { kind });
        let n = self.rng.random_range(0..self.nodes.len());
        match kind {
            FaultKind::Crash => {
                // Half the crashes go to the established leader (Jepsen's "kill the primary"):
                // fail-over is what a crash tests most, and `invariants::failover` bounds it.
                let leader = self.leader_established_at.1.filter(|_| self.rng.random_bool(0.5));
                self.crash(leader.unwrap_or(n), "nemesis")
            }
            FaultKind::CrashMidStep => {
                if self.nodes[n].node.is_some() {
                    self.nodes[n].crash_mid_step = true;
                }
            }
            FaultKind::Partition => self.partition(),
            FaultKind::LinkBreak => {
                let links = self.net.all_links();
                if !links.is_empty() {
                    let link = links[self.rng.random_range(0..links.len())];
                    self.count_fault("link_break");
                    self.break_link(link, "nemesis");
                }
            }
            FaultKind::SlowLink => {
                let links = self.net.all_links();
                if !links.is_empty() {
                    let link = links[self.rng.random_range(0..links.len())];
                    let factor = self.rng.random_range(2..=SLOW_FACTOR_MAX);
                    self.count_fault("slow_link");
                    self.trace.event(self.now, "slow", &[link.0, factor], &[], || {
                        format!("c{} x{factor}", link.0)
                    });
                    self.net.slow_link(link, factor);
                    if self.peer_links.values().any(|l| *l == link) {
                        self.checks.failover.disturbed();
                    }
                }
            }
            FaultKind::Pause => self.pause(n),
            FaultKind::ClockStep => {
                let step = self.rng.random_range(-120_000..120_000);
                self.nodes[n].clock.offset_ms += step;
                self.count_fault("clock_step");
                self.trace.event(self.now, "clock_step", &[n as u64, step as u64], &[], || {
                    format!("n{n} {step:+} ms")
                });
            }
            FaultKind::ClockDrift => {
                let max = self.swarm.drift_ppm_max;
                let ppm = if max == 0 { 0 } else { self.rng.random_range(-max..=max) };
                self.nodes[n].clock.drift_ppm = ppm;
                self.count_fault("clock_drift");
                self.trace.event(self.now, "clock_drift", &[n as u64, ppm as u64], &[], || {
                    format!("n{n} {ppm:+} ppm")
                });
            }
            FaultKind::ClientReconnect => {
                let c = self.rng.random_range(0..self.clients.len());
                if self.clients[c].conn.is_some() {
                    self.count_fault("client_reconnect");
                    self.client_drop(c, self.now, "client reconnects");
                }
            }
            FaultKind::ClientSilence => self.silence(),
        }
    }

    fn pause(&mut self, n: usize) {
        if self.nodes[n].node.is_none() || self.nodes[n].paused_until > self.now {
            return;
        }
        let until = self.now + self.rng.random_range(10_000_000..PAUSE_NS_MAX);
        self.nodes[n].paused_until = until;
        self.nodes[n].alive_since = until;
        self.count_fault("pause");
        let secs = (until - self.now) as f64 / 1e9;
        self.nemesis_line(&format!("pause n{n} {secs:.2}s"), None);
        self.trace.event(self.now, "pause", &[n as u64, until], &[], || {
            format!("n{n} until {:.6}", until as f64 / 1e9)
        });
    }

    fn silence(&mut self) {
        let c = self.rng.random_range(0..self.clients.len());
        if self.clients[c].session.is_none() || self.clients[c].silent_until > self.now {
            return;
        }
        let timeout = self.clients[c].session.as_ref().map_or(0, |s| s.timeout_ms) as u64;
        let until = if self.rng.random_bool(0.3) {
            u64::MAX
        } else {
            self.now + self.rng.random_range(timeout * 200_000..timeout * 2_000_000)
        };
        self.count_fault("client_silence");
        self.trace.event(self.now, "silence", &[c as u64, until], &[], || {
            format!("client {c} until {until}")
        });
        self.client_drop(c, until, "client goes silent");
    }

    fn partition(&mut self) {
        let nodes: Vec<Addr> = self.nodes.iter().map(|s| s.addr).collect();
        let others = |me: Addr, sim: &Sim| -> BTreeSet<Addr> {
            let clients = (0..sim.clients.len()).map(|c| Addr(CLIENT_ADDR_BASE + c as u32));
            nodes.iter().copied().filter(|a| *a != me).chain(clients).collect()
        };
        let me = nodes[self.rng.random_range(0..nodes.len())];
        let choice = if nodes.len() >= 3 {
            self.rng.random_range(0..5)
        } else {
            self.rng.random_range(0..3)
        };
        let partition = match choice {
            0 => Partition::Isolate { addr: me },
            1 => Partition::OneWay { from: [me].into_iter().collect(), to: others(me, self) },
            2 => Partition::OneWay { from: others(me, self), to: [me].into_iter().collect() },
            3 => {
                let mut shuffled = nodes.clone();
                shuffled.shuffle(&mut self.rng);
                let cut = self.rng.random_range(1..shuffled.len());
                let left = shuffled[..cut].iter().copied().collect();
                let right = shuffled[cut..].iter().copied().collect();
                Partition::Halves { left, right }
            }
            _ => {
                let mut shuffled = nodes.clone();
                shuffled.shuffle(&mut self.rng);
                let bridge = shuffled[0];
                let cut = self.rng.random_range(2..shuffled.len());
                let left = shuffled[1..cut].iter().copied().collect();
                let right = shuffled[cut..].iter().copied().collect();
                Partition::Bridge { left, right, bridge }
            }
        };
        self.count_fault(partition.kind_name());
        self.end_partition_band();
        let band = format!("{} #{}", partition.kind_name(), self.partition_generation + 1);
        self.nemesis_line(&band, Some(Phase::Start));
        self.open_partition = Some(band);
        let text = format!("{partition:?}");
        self.trace.event(self.now, "partition", &[], text.as_bytes(), || text.clone());
        for link in self.net.set_partition(partition) {
            let detect = self.rng.random_range(1_000_000..500_000_000);
            self.schedule(self.now + detect, Ev::BreakLink { link });
        }
        self.partition_generation += 1;
        let generation = self.partition_generation;
        let heal_at = self.now + self.rng.random_range(100_000_000..3_000_000_000);
        self.schedule(heal_at, Ev::Heal { generation });
    }

    pub(crate) fn heal(&mut self, generation: u64) {
        if generation != self.partition_generation {
            return;
        }
        self.trace
            .event(self.now, "heal", &[generation], &[], || format!("partition {generation}"));
        self.end_partition_band();
        let cut = self.net.set_partition(Partition::None);
        assert!(cut.is_empty(), "no link crosses an empty partition");
    }

    /// Records a fault in the client history as a `nemesis` line (the checker ignores it; the
    /// reports draw it as a band): `phase` `None` for an instant (a crash).
    pub(crate) fn nemesis_line(&mut self, fault: &str, phase: Option<Phase>) {
        self.history.push(Event {
            kind: Some(Kind::Nemesis),
            fault: Some(fault.to_string()),
            phase,
            time: Some(self.now / 1_000),
            ..Event::default()
        });
    }

    /// Ends the band of the partition in force, if any (healed or replaced by another).
    pub(crate) fn end_partition_band(&mut self) {
        if let Some(band) = self.open_partition.take() {
            self.nemesis_line(&band, Some(Phase::Stop));
        }
    }
}
