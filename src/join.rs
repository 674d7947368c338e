//! Runs several futures concurrently on the current task, without spawning: each is
//! polled in turn whenever the task wakes. Used where the futures borrow from the caller
//! (node sets of one apply, one command on several local nodes).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Every future's output, in the order given, once all have finished.
pub async fn join_all<F: Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<Pin<Box<F>>> = futs.map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => done[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().map(|d| d.expect("every future finished")).collect()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn outputs_keep_the_order_given_whatever_order_they_finish_in() {
        let waits = [30u64, 10, 20];
        let futs = waits.iter().map(|&ms| async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            ms
        });
        let started = std::time::Instant::now();
        assert_eq!(super::join_all(futs).await, vec![30, 10, 20]);
        assert!(started.elapsed() < std::time::Duration::from_millis(55), "they ran at the same time");
    }
}
