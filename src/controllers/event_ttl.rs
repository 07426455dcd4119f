//! Event expiry. kube-apiserver gives every Event a storage TTL (`--event-ttl`, 1 h); the
//! store here has no per-key TTL, so a small periodic sweep does the same: every
//! `event_ttl_sweep_seconds` it asks the API server which Events were last seen more than
//! `event_ttl_seconds` ago ([`ExpiredEvents`]) and deletes them. Background work: its reads
//! and deletes are untraced.

use std::time::Duration;

use actix::prelude::*;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;

use crate::api::Kind;
use crate::apiserver::{ApiError, ApiServer, Delete, ExpiredEvents, Trace, WriteOptions};

/// When an Event was last seen: `lastTimestamp`, else `eventTime`, else `firstTimestamp`,
/// else its creation.
pub fn last_seen(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Whether an Event last seen at `last_seen` ([`last_seen`]) has outlived `ttl` at `now`. An
/// Event with no time at all never expires (nothing says how old it is).
pub fn expired_at(last_seen: Option<Timestamp>, ttl: Duration, now: Timestamp) -> bool {
    let ttl = SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX);
    last_seen.is_some_and(|t| now.duration_since(t) > ttl)
}

/// The periodic sweep. See the module documentation.
pub struct EventTtlController {
    api: Addr<ApiServer>,
    ttl: Duration,
    every: Duration,
    sweeping: bool,
}

impl EventTtlController {
    pub fn start(api: Addr<ApiServer>, ttl: Duration, every: Duration) -> Addr<Self> {
        EventTtlController {
            api,
            ttl,
            every: every.max(Duration::from_millis(1)),
            sweeping: false,
        }
        .start()
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let api = self.api.clone();
        let ttl = self.ttl;
        let fut = async move {
            let expired = api
                .send(ExpiredEvents {
                    ttl,
                    now: Timestamp::now(),
                })
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let mut deleted = 0usize;
            for (namespace, name) in expired {
                let res = api
                    .send(Delete {
                        kind: Kind::Event,
                        namespace: Some(namespace),
                        name,
                        options: DeleteOptions::default(),
                        write: WriteOptions::default(),
                        trace: Trace::Untraced,
                    })
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                match res {
                    Ok(_) => deleted += 1,
                    Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<usize, ApiError>(deleted)
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, _| {
            act.sweeping = false;
            match res {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, "expired events deleted"),
                Err(e) => tracing::warn!(error = %e, "event ttl sweep failed"),
            }
        }));
    }
}

impl Actor for EventTtlController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.every, |act, ctx| act.sweep(ctx));
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    #[test]
    fn events_expire_after_the_ttl_from_when_they_were_last_seen() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let ago = |s: i64| Some(Time(now - SignedDuration::from_secs(s)));
        let hour = Duration::from_secs(3600);
        let expired = |e: &Event, ttl, now| expired_at(last_seen(e), ttl, now);
        let event = |first, last| Event {
            first_timestamp: first,
            last_timestamp: last,
            ..Default::default()
        };
        assert!(expired(&event(ago(7200), ago(3601)), hour, now));
        assert!(
            !expired(&event(ago(7200), ago(60)), hour, now),
            "a repeat seen a minute ago keeps an old event"
        );
        assert!(expired(&event(ago(4000), None), hour, now));
        assert!(!expired(&event(None, None), hour, now), "no time: kept");
    }
}
