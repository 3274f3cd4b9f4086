//! Instants and durations on LVA's timescale: 90 kHz ticks since the Unix epoch (UTC).
