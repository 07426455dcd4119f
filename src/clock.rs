//! Simulated time: the one clock every simulated delay and period goes through.
//!
//! Durations in configuration are *simulated* durations ("pulling nginx takes 2 s", "the
//! lease is renewed every 10 s"). A [`Clock`] turns them into real ones with one `speed`
//! factor (`[simulation] speed`):
//!
//! * `speed = 1`: real time, what a real cluster would take;
//! * `speed = 10`: ten times faster (a 10 s lease renewal every real second);
//! * `speed = 0`: simulated *work* (pulls, creates, starts, running commands) takes no time.
//!   Periods and back-offs cannot be zero (a 0 s period is a busy loop), so at speed 0 they
//!   run at [`MIN_PERIOD`].
//!
//! Wall-clock timestamps written to objects (`startedAt`, `renewTime`, events) stay real: a
//! simulated cluster is observed by real clients with real clocks.
//!
//! Components take an `Arc<dyn Clock>`; tests use [`SimClock`] with a speed of their choice,
//! and plain functions that need "now" take it as an argument.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Deserialize;

/// The shortest real period a timer runs at, whatever the speed (see the module docs).
pub const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Where simulated durations become real ones. See the module documentation.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The speed factor: simulated seconds per real second (0 = work is instant).
    fn speed(&self) -> f64;

    /// The speed factor for periods and back-offs ([`Clock::period`]); the work speed unless
    /// configured apart (`[simulation] period_speed`).
    fn period_speed(&self) -> f64 {
        self.speed()
    }

    /// Real monotonic time.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Real wall-clock time, for timestamps on objects.
    fn wall(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    /// The real duration of a piece of simulated *work*: `sim / speed`, zero at speed 0.
    fn scale(&self, sim: Duration) -> Duration {
        let speed = self.speed();
        if speed <= 0.0 {
            Duration::ZERO
        } else {
            sim.div_f64(speed)
        }
    }

    /// The real duration of a simulated *period* or back-off: like [`Clock::scale`], but never
    /// below [`MIN_PERIOD`].
    fn period(&self, sim: Duration) -> Duration {
        let speed = self.period_speed();
        if speed <= 0.0 {
            MIN_PERIOD
        } else {
            sim.div_f64(speed).max(MIN_PERIOD)
        }
    }

    /// How much simulated time a real interval stands for (`real * speed`; at speed 0, an
    /// unbounded amount: everything simulated has already happened).
    fn simulated(&self, real: Duration) -> Duration {
        let speed = self.speed();
        if speed <= 0.0 {
            Duration::MAX
        } else {
            real.mul_f64(speed)
        }
    }

    /// Wait for a simulated piece of work. Completes at once when its real duration is zero.
    fn sleep(&self, sim: Duration) -> BoxFuture<'static, ()> {
        sleep_real(self.scale(sim))
    }

    /// Wait for a simulated period or back-off (never shorter than [`MIN_PERIOD`]).
    fn sleep_period(&self, sim: Duration) -> BoxFuture<'static, ()> {
        sleep_real(self.period(sim))
    }
}

fn sleep_real(real: Duration) -> BoxFuture<'static, ()> {
    if real.is_zero() {
        Box::pin(std::future::ready(()))
    } else {
        Box::pin(tokio::time::sleep(real))
    }
}

/// The real clock scaled by a speed factor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimClock {
    speed: f64,
    /// `None`: periods run at `speed`.
    period_speed: Option<f64>,
}

impl SimClock {
    /// A clock running `speed` times faster than real time (0 = instant work). A negative or
    /// non-finite speed is treated as 1.
    pub fn new(speed: f64) -> SimClock {
        SimClock {
            speed: sane(speed),
            period_speed: None,
        }
    }

    /// This clock with periods and back-offs at their own speed (e.g. instant work but real
    /// lease renewals and resyncs, as the chain benchmark runs).
    pub fn with_period_speed(self, period_speed: f64) -> SimClock {
        SimClock {
            period_speed: Some(sane(period_speed)),
            ..self
        }
    }

    /// Real time.
    pub fn real() -> SimClock {
        SimClock::new(1.0)
    }

    /// Simulated work takes no time (tests).
    pub fn instant() -> SimClock {
        SimClock::new(0.0)
    }

    pub fn shared(self) -> Arc<dyn Clock> {
        Arc::new(self)
    }
}

/// A negative or non-finite speed is treated as 1.
fn sane(speed: f64) -> f64 {
    if speed.is_finite() && speed >= 0.0 {
        speed
    } else {
        1.0
    }
}

impl Clock for SimClock {
    fn speed(&self) -> f64 {
        self.speed
    }

    fn period_speed(&self) -> f64 {
        self.period_speed.unwrap_or(self.speed)
    }
}

/// `[simulation]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationConfig {
    /// Simulated seconds per real second; 0 = simulated work is instant.
    pub speed: f64,
    /// Simulated seconds per real second for periods and back-offs only (lease renewals,
    /// status updates, resyncs, probe periods, back-offs); 0 = the same as `speed`.
    pub period_speed: f64,
}

impl SimulationConfig {
    /// The clock this configuration describes.
    pub fn clock(&self) -> Arc<dyn Clock> {
        let clock = SimClock::new(self.speed);
        if self.period_speed > 0.0 {
            clock.with_period_speed(self.period_speed).shared()
        } else {
            clock.shared()
        }
    }

    /// Range checks, as `(dotted key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.speed.is_finite() || self.speed < 0.0 {
            return Err((
                "simulation.speed",
                format!("must be 0 or a positive number, got {}", self.speed),
            ));
        }
        let p = self.period_speed;
        if !p.is_finite() || p < 0.0 {
            return Err((
                "simulation.period_speed",
                format!("must be 0 (follow speed) or a positive number, got {p}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_divides_simulated_durations() {
        let ten = SimClock::new(10.0);
        assert_eq!(ten.scale(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(
            ten.simulated(Duration::from_secs(1)),
            Duration::from_secs(10)
        );
        let real = SimClock::real();
        assert_eq!(
            real.scale(Duration::from_millis(1500)),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn speed_zero_makes_work_instant_but_periods_finite() {
        let c = SimClock::instant();
        assert_eq!(c.scale(Duration::from_secs(300)), Duration::ZERO);
        assert_eq!(c.period(Duration::from_secs(10)), MIN_PERIOD);
        assert_eq!(c.simulated(Duration::from_millis(1)), Duration::MAX);
    }

    #[test]
    fn periods_can_run_at_their_own_speed() {
        let c = SimClock::instant().with_period_speed(1.0);
        assert_eq!(c.scale(Duration::from_secs(300)), Duration::ZERO);
        assert_eq!(c.period(Duration::from_secs(10)), Duration::from_secs(10));
        let c = SimClock::new(1.0).with_period_speed(100.0);
        assert_eq!(
            c.period(Duration::from_secs(10)),
            Duration::from_millis(100)
        );
        assert_eq!(c.scale(Duration::from_secs(2)), Duration::from_secs(2));
    }

    #[test]
    fn nonsense_speeds_fall_back_to_real_time() {
        assert_eq!(SimClock::new(-3.0).speed(), 1.0);
        assert_eq!(SimClock::new(f64::NAN).speed(), 1.0);
    }

    #[actix_rt::test]
    async fn an_instant_sleep_completes_without_a_timer() {
        let c = SimClock::instant();
        let started = Instant::now();
        c.sleep(Duration::from_secs(3600)).await;
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
