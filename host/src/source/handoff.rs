//! The bounded hand-over of one camera's items to its sinks, a group of pictures at a time:
//! one RTSP session feeds every sink of its source node (fan-out).
//!
//! Items travel in batches because a hand-over is the expensive part of moving a frame: it
//! wakes the receiving task, and the recorder then wakes a blocking-pool thread for its file
//! I/O. Per frame, those wake-ups cost more than recording the frame. A batch goes when the
//! frame after a video keyframe arrives (by then the recorder can write the fragment that the
//! keyframe closed, so batching does not widen the loss on a crash), when a run starts or ends,
//! or when it is full.
//!
//! Each sink has its own bounded queue ([`Feed`]). With one sink, a full queue makes the
//! session wait (TCP back pressure: nothing is lost while the camera buffers). With several,
//! waiting for one would stall the others, so a sink whose queue is full loses that batch:
//! one `DataDropped` diagnostic per episode, and the sink's run ends there. It starts again
//! (a new run, after a `SinkBehind` end) at the next video keyframe that finds room in its
//! queue, so what it records always starts at a keyframe. A sink that joins late (its cache
//! opened after a retry) starts the same way. Frames are shared between sinks (`Bytes`), never
//! copied.
//!
//! Must not: reorder items, hold an item back past the frame that completes its group of
//! pictures, or buffer without bound.

use tokio::sync::mpsc;

use super::{RunEndReason, SourceItem, TrackParams};
use crate::events::{Event, EventBus, catalog};

/// Items per batch at most, so a long group of pictures still reaches the disk in bounded
/// steps (about 2.5 s of 25 fps video, less with audio).
pub const MAX_BATCH_ITEMS: usize = 64;

/// A sink's end: batches in the order the source produced them.
pub type Batches = mpsc::Receiver<Vec<SourceItem>>;

/// Every sink has gone away; nothing more will be recorded.
#[derive(Debug)]
pub struct Closed;

/// One sink's queue, handed to the source (through its [`Joiner`]) once the sink has started.
pub struct Feed {
    tx: mpsc::Sender<Vec<SourceItem>>,
    /// The sink takes the source's audio track too.
    audio: bool,
    /// Event subject of the sink, e.g. `/graphInstances/g1/sinks/assetSink`.
    subject: String,
    batch: Vec<SourceItem>,
    /// Per source track of the current run: its index in this sink's run, if it takes it.
    tracks: Vec<Option<usize>>,
    /// Per track of this sink's run: is it video.
    video_tracks: Vec<bool>,
    /// The last video frame was a keyframe: the next video frame completes its fragment.
    after_keyframe: bool,
    /// This sink has a run open: it gets the source's frames.
    in_run: bool,
    /// Frames dropped in the current episode of a full queue (`None`: not dropping).
    dropped: Option<u64>,
}

/// A sink's queue of at most `batches` batches in flight, and the sink's end of it.
pub fn feed(subject: String, audio: bool, batches: usize) -> (Feed, Batches) {
    let (tx, rx) = mpsc::channel(batches);
    let feed = Feed {
        tx,
        audio,
        subject,
        batch: Vec::with_capacity(MAX_BATCH_ITEMS),
        tracks: Vec::new(),
        video_tracks: Vec::new(),
        after_keyframe: false,
        in_run: false,
        dropped: None,
    };
    (feed, rx)
}

/// How sinks join their source's hand-over, each once it has started.
#[derive(Clone)]
pub struct Joiner(mpsc::UnboundedSender<Feed>);

impl Joiner {
    /// Adds `feed` to the source's sinks; it starts at the next video keyframe.
    pub fn join(&self, feed: Feed) {
        // The source is gone only when it stopped; the sink's queue then just closes.
        let _ = self.0.send(feed);
    }
}

/// The source's end.
pub struct Handoff {
    feeds: Vec<Feed>,
    joining: mpsc::UnboundedReceiver<Feed>,
    /// No further sink can join (every [`Joiner`] is gone).
    joining_closed: bool,
    /// The source node has exactly one sink: a full queue pushes back instead of dropping.
    push_back: bool,
    /// The current run's tracks with their newest parameters, for a sink starting mid-run.
    run: Option<Vec<TrackParams>>,
    events: EventBus,
}

/// The hand-over of a source node with `sinks` sinks (each joins with its [`Feed`]).
pub fn fan_out(sinks: usize, events: EventBus) -> (Handoff, Joiner) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handoff = Handoff {
        feeds: Vec::new(),
        joining: rx,
        joining_closed: false,
        push_back: sinks <= 1,
        run: None,
        events,
    };
    (handoff, Joiner(tx))
}

/// A one-sink hand-over with its sink already joined: the sink's batches.
pub fn channel(batches: usize) -> (Handoff, Batches) {
    let (handoff, joiner) = fan_out(1, EventBus::new());
    let (feed, rx) = feed(String::new(), true, batches);
    joiner.join(feed);
    (handoff, rx)
}

impl Handoff {
    /// Waits until the first sink has joined; `Err` if none ever will.
    pub async fn first_sink(&mut self) -> Result<(), Closed> {
        if self.feeds.is_empty() {
            let feed = self.joining.recv().await.ok_or(Closed)?;
            self.feeds.push(feed);
        }
        Ok(())
    }

    /// Adds the sinks that joined since the last item.
    fn take_joined(&mut self) {
        if self.joining_closed {
            return;
        }
        loop {
            match self.joining.try_recv() {
                Ok(feed) => self.feeds.push(feed),
                Err(mpsc::error::TryRecvError::Empty) => return,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.joining_closed = true;
                    return;
                }
            }
        }
    }

    /// Hands `item` to every sink that takes it, sending each sink's batch when the item
    /// completes it. With one sink, waits while its queue is full; with several, a full queue
    /// drops that sink's batch instead.
    pub async fn send(&mut self, item: SourceItem) -> Result<(), Closed> {
        self.take_joined();
        match &item {
            SourceItem::RunStarted { tracks } => self.run = Some(tracks.clone()),
            SourceItem::RunEnded { .. } => self.run = None,
            SourceItem::Frame(f) => {
                if let (Some(p), Some(run)) = (&f.new_params, self.run.as_mut())
                    && let Some(t) = run.get_mut(f.track)
                {
                    *t = p.clone();
                }
            }
        }
        // Every sink but the last gets a clone (frame data is shared `Bytes`); the last the item.
        let mut item = Some(item);
        let last = self.feeds.len().saturating_sub(1);
        let mut i = 0;
        while i < self.feeds.len() {
            let this = if i == last {
                item.take().expect("one item per send")
            } else {
                clone_item(item.as_ref().expect("one item per send"))
            };
            let delivered =
                self.feeds[i].offer(this, self.run.as_deref(), self.push_back, &self.events);
            match delivered.await {
                Ok(()) => i += 1,
                Err(Closed) => {
                    self.feeds.remove(i);
                }
            }
        }
        if self.feeds.is_empty() && self.joining_closed {
            return Err(Closed);
        }
        Ok(())
    }
}

/// A copy for one more sink: frame data and codec parameters are reference-counted.
fn clone_item(item: &SourceItem) -> SourceItem {
    match item {
        SourceItem::RunStarted { tracks } => SourceItem::RunStarted {
            tracks: tracks.clone(),
        },
        SourceItem::Frame(f) => SourceItem::Frame(f.clone()),
        SourceItem::RunEnded { reason } => SourceItem::RunEnded {
            reason: reason.clone(),
        },
    }
}

impl Feed {
    /// Takes `item` into this sink's batch (mapped to its tracks), sending the batch when it
    /// is complete. `run`: the source's current tracks, for starting this sink mid-run.
    async fn offer(
        &mut self,
        item: SourceItem,
        run: Option<&[TrackParams]>,
        push_back: bool,
        events: &EventBus,
    ) -> Result<(), Closed> {
        let completes = match item {
            SourceItem::RunStarted { tracks } => {
                self.start_run(&tracks);
                true
            }
            SourceItem::RunEnded { reason } => {
                if !self.in_run {
                    return Ok(());
                }
                self.in_run = false;
                self.batch.push(SourceItem::RunEnded { reason });
                true
            }
            SourceItem::Frame(mut f) => {
                if !self.in_run {
                    let video = run
                        .and_then(|r| r.get(f.track))
                        .is_some_and(TrackParams::is_video);
                    let Some(tracks) = run.filter(|_| video && f.keyframe) else {
                        if let Some(n) = self.dropped.as_mut() {
                            *n += 1;
                        }
                        return Ok(());
                    };
                    self.start_run(tracks);
                    // The run's start goes first, on its own: if it finds no room, the
                    // keyframe is dropped with it and the next one tries again.
                    self.deliver(push_back, events).await?;
                    if !self.in_run {
                        *self.dropped.get_or_insert(0) += 1;
                        return Ok(());
                    }
                }
                let Some(track) = self.tracks.get(f.track).copied().flatten() else {
                    return Ok(()); // a track this sink does not take
                };
                f.track = track;
                let completes = if self.video_tracks[track] {
                    let closes_fragment = self.after_keyframe;
                    self.after_keyframe = f.keyframe;
                    closes_fragment
                } else {
                    false
                };
                self.batch.push(SourceItem::Frame(f));
                completes
            }
        };
        if completes || self.batch.len() >= MAX_BATCH_ITEMS {
            self.deliver(push_back, events).await?;
        }
        Ok(())
    }

    /// Opens this sink's run on `tracks` (the ones it takes, renumbered); a sink that was
    /// dropping first ends the run it lost frames of.
    fn start_run(&mut self, tracks: &[TrackParams]) {
        if let Some(frames) = self.dropped {
            self.batch.push(SourceItem::RunEnded {
                reason: RunEndReason::SinkBehind { frames },
            });
        }
        let mut taken = Vec::new();
        self.tracks = tracks
            .iter()
            .map(|t| {
                (t.is_video() || self.audio).then(|| {
                    taken.push(t.clone());
                    taken.len() - 1
                })
            })
            .collect();
        self.video_tracks = taken.iter().map(TrackParams::is_video).collect();
        self.after_keyframe = false;
        self.in_run = true;
        self.batch.push(SourceItem::RunStarted { tracks: taken });
    }

    /// Sends the batch: waits for room (`push_back`), or drops it when the queue is full.
    async fn deliver(&mut self, push_back: bool, events: &EventBus) -> Result<(), Closed> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(MAX_BATCH_ITEMS));
        if push_back {
            return self.tx.send(batch).await.map_err(|_| Closed);
        }
        match self.tx.try_send(batch) {
            Ok(()) => {
                if let Some(frames) = self.dropped.take() {
                    tracing::info!(sink = %self.subject, frames, "the sink keeps up again; recording resumed at a keyframe");
                }
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Closed),
            Err(mpsc::error::TrySendError::Full(lost)) => {
                let frames = lost
                    .iter()
                    .filter(|i| matches!(i, SourceItem::Frame(_)))
                    .count() as u64;
                if self.dropped.is_none() {
                    tracing::warn!(sink = %self.subject, "the sink cannot keep up with its camera (its disk or plugins are slower); its frames are dropped until it can, the other sinks go on");
                    let bytes = lost
                        .iter()
                        .map(|i| match i {
                            SourceItem::Frame(f) => f.data.len() as u64,
                            _ => 0,
                        })
                        .sum();
                    events.emit(Event::new(
                        self.subject.clone(),
                        catalog::DataDropped {
                            data_type: "video",
                            reason: "sinkBehind",
                            bytes,
                        },
                    ));
                }
                *self.dropped.get_or_insert(0) += frames;
                // What this sink had of its run is lost with the batch: it starts again.
                self.in_run = false;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
