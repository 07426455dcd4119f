//! A write's reply, sent straight into the requester's own reply channel once the write is
//! durable.
//!
//! A handler cannot answer a write at once: the reply waits for the group commit. actix's
//! `ResponseFuture` would spawn a task per write on the API server's thread that awaits a
//! oneshot and then sends into actix's reply channel: a task, a channel and a wake-up more
//! per write on the one serial stage every write passes through. Instead a handler returns
//! an [`Answer`], and actix hands the reply channel to [`Answer`]'s `MessageResponse` right
//! after the handler returns; the pending write keeps a [`ReplyTx`] that sends into that
//! channel when the write is applied.

use std::sync::Arc;

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{ApiError, ApiServer};

/// A reply: ready now, or when the write it waits for is durable (or failed).
pub enum Answer<T> {
    Ready(Result<T, ApiError>),
    Later(ReplyRx<T>),
}

/// The sending half: kept with the pending write.
pub struct ReplyTx<T>(Arc<Mutex<State<T>>>);

/// The receiving half: bound to actix's reply channel, or awaited with [`ReplyRx::recv`].
pub struct ReplyRx<T>(Arc<Mutex<State<T>>>);

enum State<T> {
    /// Neither sent nor bound yet.
    Empty,
    /// Bound: the reply goes here when sent.
    Bound(oneshot::Sender<Result<T, ApiError>>),
    /// Sent before the receiver was bound.
    Sent(Result<T, ApiError>),
    /// The exchange is over: the reply was delivered, or the other half is gone (a
    /// `do_send`'s receiver, or a sender dropped unsent).
    Closed,
}

/// A reply channel for one write.
pub fn channel<T>() -> (ReplyTx<T>, ReplyRx<T>) {
    let state = Arc::new(Mutex::new(State::Empty));
    (ReplyTx(state.clone()), ReplyRx(state))
}

const DROPPED: &str = "the write was dropped before it became durable";

impl<T> ReplyTx<T> {
    /// Answer the request. `false`: nobody waits for the answer any more.
    pub fn send(self, reply: Result<T, ApiError>) -> bool {
        let mut state = self.0.lock();
        match std::mem::replace(&mut *state, State::Closed) {
            State::Empty => {
                *state = State::Sent(reply);
                true
            }
            State::Bound(tx) => tx.send(reply).is_ok(),
            closed @ (State::Sent(_) | State::Closed) => {
                *state = closed;
                false
            }
        }
    }
}

impl<T> Drop for ReplyTx<T> {
    /// Never sent (the API server stopped first): the requester is told so, not left to see
    /// a closed mailbox.
    fn drop(&mut self) {
        let mut state = self.0.lock();
        match std::mem::replace(&mut *state, State::Closed) {
            State::Bound(tx) => {
                let _ = tx.send(Err(ApiError::Internal(DROPPED.into())));
            }
            // Sent: keep the reply for the receiver.
            sent @ State::Sent(_) => *state = sent,
            // Empty: the receiver, when bound, is told the write was dropped.
            State::Empty | State::Closed => {}
        }
    }
}

impl<T> ReplyRx<T> {
    /// Deliver the reply into `tx`: now if it was sent, else when it is.
    fn bind(self, tx: oneshot::Sender<Result<T, ApiError>>) {
        let mut state = self.0.lock();
        match std::mem::replace(&mut *state, State::Closed) {
            State::Empty => *state = State::Bound(tx),
            State::Sent(reply) => {
                let _ = tx.send(reply);
            }
            // The sender was dropped unsent.
            State::Closed | State::Bound(_) => {
                let _ = tx.send(Err(ApiError::Internal(DROPPED.into())));
            }
        }
    }

    /// Wait for the reply (for replies that are combined or converted before they go out).
    pub async fn recv(self) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.bind(tx);
        rx.await
            .unwrap_or_else(|_| Err(ApiError::Internal(DROPPED.into())))
    }
}

impl<T> Drop for ReplyRx<T> {
    /// Unbound and dropped (the request was a `do_send`, or its answer was replaced): a
    /// later send is refused instead of kept.
    fn drop(&mut self) {
        let mut state = self.0.lock();
        if matches!(*state, State::Empty | State::Sent(_)) {
            *state = State::Closed;
        }
    }
}

impl<T> Answer<T> {
    /// Wait for the answer (see [`ReplyRx::recv`]).
    pub async fn recv(self) -> Result<T, ApiError> {
        match self {
            Answer::Ready(r) => r,
            Answer::Later(rx) => rx.recv().await,
        }
    }
}

impl<M, T> MessageResponse<ApiServer, M> for Answer<T>
where
    M: Message<Result = Result<T, ApiError>>,
    T: 'static,
{
    fn handle(self, _: &mut Context<ApiServer>, tx: Option<OneshotSender<M::Result>>) {
        match (self, tx) {
            (Answer::Ready(reply), Some(tx)) => {
                let _ = tx.send(reply);
            }
            (Answer::Later(rx), Some(tx)) => rx.bind(tx),
            (_, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped(r: Result<u32, ApiError>) -> bool {
        matches!(r, Err(ApiError::Internal(msg)) if msg == DROPPED)
    }

    #[actix_rt::test]
    async fn a_reply_sent_before_the_receiver_is_bound_is_delivered() {
        let (tx, rx) = channel::<u32>();
        assert!(tx.send(Ok(7)));
        assert_eq!(rx.recv().await.ok(), Some(7));
    }

    #[actix_rt::test]
    async fn a_reply_sent_after_the_receiver_is_bound_is_delivered() {
        let (tx, rx) = channel::<u32>();
        let (out_tx, out_rx) = oneshot::channel();
        rx.bind(out_tx);
        assert!(tx.send(Ok(8)));
        assert_eq!(out_rx.await.ok().and_then(Result::ok), Some(8));
    }

    #[actix_rt::test]
    async fn a_sender_dropped_unsent_answers_with_an_error() {
        let (tx, rx) = channel::<u32>();
        let (out_tx, out_rx) = oneshot::channel();
        rx.bind(out_tx);
        drop(tx);
        assert!(dropped(
            out_rx.await.expect("an answer, not a closed channel")
        ));
        let (tx, rx) = channel::<u32>();
        drop(tx);
        let (out_tx, out_rx) = oneshot::channel();
        rx.bind(out_tx);
        assert!(dropped(
            out_rx.await.expect("an answer, not a closed channel")
        ));
    }

    #[test]
    fn a_reply_nobody_waits_for_is_refused() {
        let (tx, rx) = channel::<u32>();
        drop(rx);
        assert!(!tx.send(Ok(9)));
    }
}
