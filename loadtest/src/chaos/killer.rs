//! The kills: SIGKILL serve after a random pause, aiming in turn at no
//! moment in particular, at a reply being written downstream (applied,
//! not yet answered: the worker never learns it went out) and at a
//! webhook being acknowledged (between the ledger claim, the queue send
//! and the ack); then restart it on the same state and port.
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use downstream::fake::FakeHandle;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::senders::Progress;
use super::serve::{Serve, ServeSpec};
use super::verify::reply_ticket;

/// Where a kill was aimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aim {
    Anywhere,
    /// A customer-facing write in flight at the fake.
    InReply,
    /// A webhook request in flight at the ingress.
    InAck,
}

const AIMS: [Aim; 3] = [Aim::Anywhere, Aim::InReply, Aim::InAck];

/// One kill as it happened.
#[derive(Debug, Clone)]
pub struct Kill {
    pub aim: Aim,
    /// The aimed-at moment was found (else it fell back to "anywhere").
    pub hit: bool,
    pub restart: Duration,
}

/// Settings of the kills.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub kills: usize,
    pub min_pause: Duration,
    pub max_pause: Duration,
    pub seed: u64,
    pub quiet: bool,
}

/// Kill and restart `serve` `schedule.kills` times; returns the serve running at
/// the end. Sets `progress.stop` when done, also on failure.
pub async fn run(
    schedule: &Schedule,
    spec: &ServeSpec,
    mut serve: Serve,
    fake: &FakeHandle,
    progress: Arc<Progress>,
) -> (anyhow::Result<Serve>, Vec<Kill>) {
    let mut rng = StdRng::seed_from_u64(schedule.seed.rotate_left(17));
    let mut kills = Vec::new();
    let started = Instant::now();
    let result = async {
        for kill_number in 0..schedule.kills {
            let pause =
                rng.random_range(schedule.min_pause..=schedule.max_pause.max(schedule.min_pause));
            tokio::time::sleep(pause).await;
            let aim = AIMS[kill_number % AIMS.len()];
            let hit = match aim {
                Aim::Anywhere => true,
                Aim::InReply => {
                    wait_for(|| fake.in_flight().iter().any(|r| reply_ticket(r).is_some())).await
                }
                Aim::InAck => {
                    let hit = wait_for(|| progress.in_flight.load(Ordering::Relaxed) > 0).await;
                    // Somewhere inside the claim → send → ack steps.
                    let delay = rng.random_range(0..30);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    hit
                }
            };
            serve.kill().await;
            let restarting = Instant::now();
            serve = spec.start(serve.port, kill_number as u32 + 1).await?;
            let kill = Kill {
                aim,
                hit,
                restart: restarting.elapsed(),
            };
            if !schedule.quiet {
                eprintln!(
                    "chaos: kill {}/{} at {:.1} s ({:?}{}), back in {:.1} s",
                    kill_number + 1,
                    schedule.kills,
                    started.elapsed().as_secs_f64(),
                    kill.aim,
                    if kill.hit { "" } else { ", not found" },
                    kill.restart.as_secs_f64()
                );
            }
            kills.push(kill);
        }
        Ok::<_, anyhow::Error>(serve)
    }
    .await;
    progress.stop.store(true, Ordering::Relaxed);
    (result, kills)
}

/// Poll `cond` for up to 3 s.
async fn wait_for(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}
