//! The bounded hand-over of a camera's items to its recorder, a group of pictures at a time.
//!
//! Items travel in batches because a hand-over is the expensive part of moving a frame: it
//! wakes the receiving task, and the recorder then wakes a blocking-pool thread for its file
//! I/O. Per frame, those wake-ups cost more than recording the frame. A batch goes when the
//! frame after a video keyframe arrives (by then the recorder can write the fragment that the
//! keyframe closed, so batching does not widen the loss on a crash), when a run starts or ends,
//! or when it is full.
//!
//! Must not: reorder items, hold an item back past the frame that completes its group of
//! pictures, or buffer without bound (a full channel makes the sender wait, which slows the
//! session down through TCP).

use tokio::sync::mpsc;

use super::SourceItem;

/// Items per batch at most, so a long group of pictures still reaches the disk in bounded
/// steps (about 2.5 s of 25 fps video, less with audio).
pub const MAX_BATCH_ITEMS: usize = 64;

/// The recorder's end: batches in the order the source produced them.
pub type Batches = mpsc::Receiver<Vec<SourceItem>>;

/// The recorder has gone away; nothing more will be recorded.
#[derive(Debug)]
pub struct Closed;

/// The source's end.
pub struct Handoff {
    tx: mpsc::Sender<Vec<SourceItem>>,
    batch: Vec<SourceItem>,
    /// Per track of the current run: is it video.
    video_tracks: Vec<bool>,
    /// The last video frame was a keyframe: the next video frame completes its fragment.
    after_keyframe: bool,
}

/// A hand-over holding at most `batches` full batches in flight.
pub fn channel(batches: usize) -> (Handoff, Batches) {
    let (tx, rx) = mpsc::channel(batches);
    let handoff = Handoff {
        tx,
        batch: Vec::with_capacity(MAX_BATCH_ITEMS),
        video_tracks: Vec::new(),
        after_keyframe: false,
    };
    (handoff, rx)
}

impl Handoff {
    /// Queues `item`, sending the batch when the item completes it; waits while the channel is
    /// full.
    pub async fn send(&mut self, item: SourceItem) -> Result<(), Closed> {
        let completes_batch = match &item {
            SourceItem::RunStarted { tracks } => {
                self.video_tracks = tracks.iter().map(|t| t.is_video()).collect();
                self.after_keyframe = false;
                true
            }
            SourceItem::RunEnded { .. } => true,
            SourceItem::Frame(f) => {
                if self.video_tracks.get(f.track).copied().unwrap_or(false) {
                    let closes_fragment = self.after_keyframe;
                    self.after_keyframe = f.keyframe;
                    closes_fragment
                } else {
                    false
                }
            }
        };
        self.batch.push(item);
        if !completes_batch && self.batch.len() < MAX_BATCH_ITEMS {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(MAX_BATCH_ITEMS));
        self.tx.send(batch).await.map_err(|_| Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Frame, RunEndReason, TrackCodec, TrackParams};
    use crate::time::Ticks90k;

    fn track(codec: TrackCodec) -> TrackParams {
        TrackParams {
            codec,
            clock_rate: crate::time::ClockRate::HZ_90K,
            width: 0,
            height: 0,
            sample_rate: 0,
            channels: 0,
            decoder_config: bytes::Bytes::new(),
            rfc6381: String::new(),
        }
    }

    fn frame(track: usize, keyframe: bool) -> SourceItem {
        SourceItem::Frame(Frame {
            track,
            media_time: 0,
            decode_time: 0,
            wall: Ticks90k(0),
            keyframe,
            data: bytes::Bytes::new(),
            new_params: None,
        })
    }

    /// What the recorder receives for `items`: the length of each batch.
    async fn batch_lengths(items: Vec<SourceItem>) -> Vec<usize> {
        let (mut handoff, mut rx) = channel(1000);
        for item in items {
            handoff.send(item).await.unwrap();
        }
        drop(handoff);
        let mut lengths = Vec::new();
        while let Some(b) = rx.recv().await {
            lengths.push(b.len());
        }
        lengths
    }

    #[tokio::test]
    async fn a_batch_ends_with_the_frame_that_completes_a_group_of_pictures() {
        let tracks = vec![track(TrackCodec::H264), track(TrackCodec::Aac)];
        let mut items = vec![SourceItem::RunStarted { tracks }];
        for gop in 0..2 {
            items.push(frame(0, true));
            items.push(frame(1, true)); // audio frames are keyframes too, but never close
            items.push(frame(0, false));
            items.push(frame(0, false));
            if gop == 1 {
                items.push(SourceItem::RunEnded {
                    reason: RunEndReason::Stalled,
                });
            }
        }
        // RunStarted | K A P(closes) | P K A P(closes) | P RunEnded
        assert_eq!(batch_lengths(items).await, vec![1, 3, 4, 2]);
    }

    #[tokio::test]
    async fn a_long_group_of_pictures_goes_in_bounded_batches() {
        let mut items = vec![SourceItem::RunStarted {
            tracks: vec![track(TrackCodec::H265)],
        }];
        items.push(frame(0, true));
        items.extend((0..150).map(|_| frame(0, false)));
        assert_eq!(
            batch_lengths(items).await,
            vec![1, 2, MAX_BATCH_ITEMS, MAX_BATCH_ITEMS]
        );
    }
}
