//! What zkCli.sh prints, byte for byte where we can: the Stat block, Java's `Date.toString()`,
//! ACL lines and permission letters, watch events, and the error texts of ZooKeeper's
//! `CliWrapperException` (checked against zkCli.sh 3.8 by `tests/tests/zkr_cli.rs`).
//!
//! Dates are printed in UTC (Java prints the JVM's zone; our servers and CI run in UTC).

use zkr_core::proto::client::{EventType, WatcherEvent};
use zkr_core::proto::error::ZkError;
use zkr_core::types::{Acl, Id, Stat, perms};

/// The 11-line Stat block of `get -s`, `stat`, `ls -s`, `set -s`, `getAcl -s`.
pub fn stat_block(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        s.czxid,
        java_date(s.ctime),
        s.mzxid,
        java_date(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children
    )
}

/// Java's `new Date(ms).toString()` in UTC: `Wed Dec 02 13:42:56 UTC 2026`.
pub fn java_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).expect("0..7")];
    let month = MONTHS[usize::try_from(month - 1).expect("1..=12")];
    format!(
        "{weekday} {month} {day:02} {:02}:{:02}:{:02} UTC {year}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `ZKUtil.getPermString`: letters in the order c, d, r, w, a.
pub fn perm_string(bits: i32) -> String {
    let letters = [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ];
    letters.iter().filter(|(bit, _)| bits & bit != 0).map(|(_, c)| *c).collect()
}

/// `getAcl`'s two lines per entry: `'world,'anyone` then `: cdrwa`.
pub fn acl_lines(acl: &[Acl]) -> String {
    acl.iter()
        .map(|a| format!("'{},'{}\n: {}\n", a.id.scheme, a.id.id, perm_string(a.perms)))
        .collect()
}

/// `AclParser.parse`: `scheme:id:perms[,scheme:id:perms...]`. Entries zkCli would skip with a
/// message are errors here (a script should not set an ACL it did not ask for).
pub fn parse_acl(text: &str) -> Result<Vec<Acl>, String> {
    let mut acl = Vec::new();
    for entry in text.split(',') {
        let (Some(first), Some(last)) = (entry.find(':'), entry.rfind(':')) else {
            return Err(format!("ACL: {entry} does not have the form scheme:id:perm"));
        };
        if first == last {
            return Err(format!("ACL: {entry} does not have the form scheme:id:perm"));
        }
        let mut bits = 0;
        for c in entry[last + 1..].chars() {
            bits |= match c.to_ascii_lowercase() {
                'r' => perms::READ,
                'w' => perms::WRITE,
                'c' => perms::CREATE,
                'd' => perms::DELETE,
                'a' => perms::ADMIN,
                other => return Err(format!("Unknown perm type: {other}")),
            };
        }
        let id = Id::new(&entry[..first], &entry[first + 1..last]);
        acl.push(Acl { perms: bits, id });
    }
    Ok(acl)
}

/// `CliWrapperException.getMessage` for a failed request on `path`.
pub fn error_message(err: ZkError, path: &str) -> String {
    match err {
        ZkError::NoNode => format!("Node does not exist: {path}"),
        ZkError::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {path}"),
        ZkError::NodeExists => format!("Node already exists: {path}"),
        ZkError::NotEmpty => format!("Node not empty: {path}"),
        ZkError::NotReadOnly => format!("Not a read-only call: {path}"),
        ZkError::InvalidAcl => format!("Acl is not valid : {path}"),
        ZkError::NoAuth => format!("Insufficient permission : {path}"),
        ZkError::BadArguments => format!("Argument not valid : {path}"),
        ZkError::BadVersion => format!("version No is not valid : {path}"),
        other => format!("KeeperErrorCode = {} for {path}", code_message(other)),
    }
}

/// `KeeperException.getCodeMessage` for the codes whose text is not the enum name.
fn code_message(err: ZkError) -> String {
    let text = match err {
        ZkError::SessionExpired => "Session expired",
        ZkError::SessionMoved => "Session moved",
        ZkError::NoWatcher => "No such watcher",
        ZkError::RequestTimeout => "Request timeout",
        ZkError::QuotaExceeded => "Quota has exceeded",
        ZkError::EphemeralOnLocalSession => "Ephemeral node on local session",
        ZkError::InvalidAcl => "InvalidACL",
        ZkError::ApiError => "APIError",
        _ => return format!("{err:?}"),
    };
    text.to_string()
}

/// What zkCli's default watcher prints for a notification (3.8 layout).
pub fn watched_event(ev: &WatcherEvent) -> String {
    let kind = match ev.event_type {
        EventType::NodeCreated => "NodeCreated",
        EventType::NodeDeleted => "NodeDeleted",
        EventType::NodeDataChanged => "NodeDataChanged",
        EventType::NodeChildrenChanged => "NodeChildrenChanged",
    };
    format!("\nWATCHER::\n\nWatchedEvent state:SyncConnected type:{kind} path:{}\n", ev.path)
}

/// The event the Java client raises itself when `removewatches` succeeds (`DataWatchRemoved`,
/// `ChildWatchRemoved`).
pub fn watch_removed_event(kind: &str, path: &str) -> String {
    format!("\nWATCHER::\n\nWatchedEvent state:SyncConnected type:{kind} path:{path}\n")
}

/// The session-state event zkCli prints on connect (`SyncConnected`) and on close (`Closed`).
pub fn state_event(state: &str) -> String {
    format!("\nWATCHER::\n\nWatchedEvent state:{state} type:None path:null\n")
}

/// `[a, b, c]`, as Java prints a `List<String>`.
pub fn java_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_print_as_java_does_in_utc() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        // 2026-12-02T13:42:56.789Z, as zkCli printed it against Apache ZooKeeper.
        assert_eq!(java_date(1_796_218_976_789), "Wed Dec 02 13:42:56 UTC 2026");
        // A leap day, and a date before the epoch.
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(java_date(-1), "Wed Dec 31 23:59:59 UTC 1969");
    }

    #[test]
    fn perms_and_acls_round_trip_through_the_zkcli_forms() {
        assert_eq!(perm_string(perms::ALL), "cdrwa");
        assert_eq!(perm_string(perms::READ | perms::ADMIN), "ra");
        let acl = parse_acl("world:anyone:r,digest:u:h=:cdrwa").expect("valid");
        assert_eq!(acl[0], Acl { perms: perms::READ, id: Id::new("world", "anyone") });
        assert_eq!(acl[1].id, Id::new("digest", "u:h="));
        assert_eq!(acl[1].perms, perms::ALL);
        assert_eq!(acl_lines(&acl[..1]), "'world,'anyone\n: r\n");
        assert!(parse_acl("world:anyone").is_err());
        assert!(parse_acl("world:anyone:rx").is_err());
    }

    #[test]
    fn stat_block_has_zkclis_eleven_lines() {
        let stat = Stat { czxid: 2, mzxid: 9, pzxid: 5, ephemeral_owner: 0x10, ..Stat::default() };
        let text = stat_block(&stat);
        assert_eq!(text.lines().count(), 11);
        assert!(text.starts_with("cZxid = 0x2\nctime = Thu Jan 01 00:00:00 UTC 1970\n"));
        assert!(text.contains("\nmZxid = 0x9\n"));
        assert!(text.contains("\nephemeralOwner = 0x10\n"));
    }
}
