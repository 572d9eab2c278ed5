//! The stream-processing layer of sluice (operators, keyed state, windows, exactly-once). Not built yet.
