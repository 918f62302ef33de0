//! The server's own CPU time per request, for `kms bench` (issue 21): the server process's
//! `utime + stime` from `/proc/<pid>/stat` read before and after each measured phase.
//!
//! The server is `--server-pid`, or, when the endpoint is on loopback, the process holding
//! the listening socket of the endpoint's port (`/proc/net/tcp{,6}` gives the socket's
//! inode, `/proc/*/fd/*` the process whose descriptor links to `socket:[inode]`). Written by
//! hand: the few lines of /proc parsing do not warrant a `procfs` dependency.

use std::path::Path;

/// Where the server's CPU time is read from, or why it cannot be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Pid(u32),
    Unavailable(String),
}

impl Probe {
    /// `--server-pid` if given, else the process listening on the endpoint's loopback port.
    pub fn resolve(given: Option<u32>, endpoint: &str) -> Probe {
        if let Some(pid) = given {
            return match read_cpu_ticks(pid) {
                Some(_) => Probe::Pid(pid),
                None => Probe::Unavailable(format!("cannot read /proc/{pid}/stat")),
            };
        }
        let Some(port) = loopback_port(endpoint) else {
            return Probe::Unavailable(
                "the endpoint is not on loopback; give --server-pid".to_string(),
            );
        };
        match find_listener(Path::new("/proc"), port) {
            Some(pid) => Probe::Pid(pid),
            None => Probe::Unavailable(format!(
                "no process of this user found listening on port {port}; give --server-pid"
            )),
        }
    }

    /// The server's CPU time so far, in microseconds (`None`: unavailable or it exited).
    pub fn cpu_us(&self) -> Option<f64> {
        match self {
            Probe::Pid(pid) => read_cpu_ticks(*pid).map(|t| t as f64 * 1e6 / clock_ticks()),
            Probe::Unavailable(_) => None,
        }
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn read_cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_ticks(&text)
}

/// `utime + stime` (fields 14 and 15, in clock ticks) of a `/proc/<pid>/stat` line. The
/// second field, `(comm)`, may hold spaces and parentheses, so the fields are counted from
/// its last `)`.
pub fn parse_stat_cpu_ticks(line: &str) -> Option<u64> {
    let rest = &line[line.rfind(')')? + 1..];
    // After comm: state (field 3), ppid, ..., utime is field 14 → index 11 here.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The port of an endpoint whose host is a loopback address (`127.x.x.x`, `::1`,
/// `localhost`); `None` otherwise. A missing port is 80 for http, 443 for https.
pub fn loopback_port(endpoint: &str) -> Option<u16> {
    let (default, rest) = if let Some(r) = endpoint.strip_prefix("http://") {
        (80, r)
    } else if let Some(r) = endpoint.strip_prefix("https://") {
        (443, r)
    } else {
        (80, endpoint)
    };
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let (h, after) = r.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback.then_some(port)
}

/// The inodes of the sockets listening on `port` in a `/proc/net/tcp` or `tcp6` table.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let local = f.get(1)?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let p = u16::from_str_radix(hex_port, 16).ok()?;
            (p == port && *f.get(3)? == LISTEN)
                .then(|| f.get(9)?.parse().ok())
                .flatten()
        })
        .filter(|inode| *inode != 0)
        .collect()
}

/// The process (under `proc`) holding a socket listening on `port`.
pub fn find_listener(proc: &Path, port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(proc.join(table)) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir(proc).ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Another user's descriptors cannot be read: skipped.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_a_hostile_comm() {
        // comm "a) b (c" in parentheses: spaces and parentheses inside.
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    1234 567 0 0 20 0 3 0 99 123456 789 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(line), Some(1234 + 567));
        let plain = "1 (kms) R 0 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat_cpu_ticks(plain), Some(10));
        for bad in [
            "",
            "1 kms R 0",
            "1 (kms) R 0 1 1",
            "1 (x) R 0 1 1 0 -1 0 0 0 0 0 x 3",
        ] {
            assert_eq!(parse_stat_cpu_ticks(bad), None, "{bad}");
        }
        // Our own process: readable and monotonic.
        let me = std::process::id();
        let a = read_cpu_ticks(me).unwrap();
        let b = read_cpu_ticks(me).unwrap();
        assert!(b >= a);
    }

    #[test]
    fn loopback_endpoints() {
        assert_eq!(loopback_port("http://127.0.0.1:8080"), Some(8080));
        assert_eq!(loopback_port("https://localhost:8443/"), Some(8443));
        assert_eq!(loopback_port("http://[::1]:9000"), Some(9000));
        assert_eq!(loopback_port("127.0.0.2:7"), Some(7));
        assert_eq!(loopback_port("http://localhost"), Some(80));
        assert_eq!(loopback_port("https://[::1]"), Some(443));
        assert_eq!(loopback_port("http://10.0.0.1:8080"), None);
        assert_eq!(loopback_port("http://kms.example:8080"), None);
        assert_eq!(loopback_port("http://127.0.0.1:notaport"), None);
    }

    #[test]
    fn listening_sockets_from_proc_net_tcp() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 31337 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 31338 1 0000000000000000 20 4 30 10 -1\n\
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening_inodes(tcp, 8080), vec![31337]);
        assert_eq!(listening_inodes(tcp, 22), vec![999]);
        assert!(listening_inodes(tcp, 443).is_empty());
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000001000000:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening_inodes(tcp6, 9000), vec![4242]);
    }

    #[test]
    fn finds_our_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(
            find_listener(Path::new("/proc"), port),
            Some(std::process::id())
        );
        let endpoint = format!("http://127.0.0.1:{port}");
        assert_eq!(
            Probe::resolve(None, &endpoint),
            Probe::Pid(std::process::id())
        );
        drop(l);
        assert!(matches!(
            Probe::resolve(None, "http://10.1.2.3:80"),
            Probe::Unavailable(_)
        ));
        assert!(matches!(
            Probe::resolve(Some(u32::MAX), &endpoint),
            Probe::Unavailable(_)
        ));
    }
}
