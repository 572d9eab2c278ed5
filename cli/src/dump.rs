//! `sluice dump`: decode a file of concatenated record batches to JSON lines.
//!
//! The layout is that of a Kafka `.log` segment. Records before any damage are printed; then
//! one line names the error and its byte offset, and the command fails.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use bytes::Bytes;
use sluice_protocol::record::RecordBatches;
use sluice_protocol::Decompressor;

use crate::json::RecordLine;

/// Arguments of `sluice dump`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The segment file to decode.
    file: PathBuf,
    /// Do not check each batch's CRC32C (read a file whose checksums you know are wrong).
    #[arg(long)]
    no_verify_crc: bool,
}

pub(crate) fn run(args: &Args) -> io::Result<()> {
    let data = fs::read(&args.file).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", args.file.display()),
        )
    })?;
    let mut out = BufWriter::new(io::stdout().lock());
    let result = dump(Bytes::from(data), !args.no_verify_crc, &mut out);
    out.flush()?;
    result.map_err(|e| match e {
        DumpError::Io(e) => e,
        DumpError::Decode(e) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", args.file.display()),
        ),
    })
}

#[derive(Debug)]
enum DumpError {
    Io(io::Error),
    Decode(sluice_protocol::Error),
}

impl From<io::Error> for DumpError {
    fn from(e: io::Error) -> Self {
        DumpError::Io(e)
    }
}

impl From<sluice_protocol::Error> for DumpError {
    fn from(e: sluice_protocol::Error) -> Self {
        DumpError::Decode(e)
    }
}

fn dump(data: Bytes, verify_crc: bool, out: &mut impl Write) -> Result<(), DumpError> {
    let mut decompressor = Decompressor::new();
    for batch in RecordBatches::new(data) {
        let batch = batch?;
        if verify_crc {
            batch.verify_crc()?;
        }
        let records = batch.decode(&mut decompressor)?;
        for record in &records {
            let record = record?;
            serde_json::to_writer(&mut *out, &RecordLine::new(&batch, &record))
                .map_err(io::Error::from)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}
