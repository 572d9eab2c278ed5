//! Which process listens on a loopback port.
//!
//! A port picked as free can be taken by another process before the broker binds it. Tansu
//! then exits (with status 0) on "Address in use", while the port's new owner answers our
//! readiness probe: a connect alone would call a dead broker ready. On Linux we therefore also
//! check that the listening socket belongs to the broker's process.

/// True if process `pid` holds the socket listening on 127.0.0.1:`port`.
///
/// Reads `/proc/net/tcp` for the socket's inode, then looks for that inode among the
/// process's open files.
#[cfg(target_os = "linux")]
pub(crate) fn owned_by(pid: u32, port: u16) -> bool {
    const LISTEN: &str = "0A";
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    // Addresses are hex: the IPv4 address in host (little-endian) order, the port big-endian.
    let local = format!("0100007F:{port:04X}");
    let Some(inode) = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&LISTEN))
            .then(|| fields.get(9).map(|inode| format!("socket:[{inode}]")))
            .flatten()
    }) else {
        return false;
    };
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == inode.as_str())
    })
}

/// Without `/proc` we cannot tell; the caller's connect and liveness checks have to do.
#[cfg(not(target_os = "linux"))]
pub(crate) fn owned_by(_pid: u32, _port: u16) -> bool {
    true
}
