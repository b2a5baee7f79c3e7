//! Requests served locally, without a txn: reads, sync (standalone), watch registration and
//! removal, setWatches after a reconnect, whoAmI. Each follows ZooKeeper's
//! `FinalRequestProcessor` check order: NONODE before NOAUTH, and watches set only on success
//! (except exists, which leaves a watch on a missing node).
//!
//! The empty path names the root for reads, as in ZooKeeper, whose `DataTree` holds the root
//! under both "" and "/" (a watch set through "" is kept under "" and so never fires, as
//! there); writes refuse it when they validate their path.

use crate::proto::client::{EventType, MultiResult, OpCode, Request, Response};
use crate::proto::error::ZkError;
use crate::shared::Shared;
use crate::tree::acl::check_acl;
use crate::types::{Acl, ConnId, Id, perms};
use crate::watch::{Table, mode};

/// The tree path a read looks up: the root for the empty path (see the module doc).
fn lookup(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

impl Shared {
    /// Registers a watch; one on an existing node shares the tree's copy of its path (issue 14:
    /// bytes per watch).
    fn add_watch(&mut self, table: Table, path: &str, conn: ConnId, modes: u8) {
        match self.tree.path_key(path) {
            Some(key) => self.watches.add_shared(table, key, conn, modes),
            None => self.watches.add(table, path, conn, modes),
        }
    }

    fn check(&self, conn: ConnId, acl: &[Acl], wanted: i32) -> Result<(), ZkError> {
        let ids: &[Id] = &self.conns[&conn].ids;
        if check_acl(acl, ids, wanted, self.config.skip_acl) {
            Ok(())
        } else {
            Err(ZkError::NoAuth)
        }
    }

    fn node_acl(&self, path: &str) -> Result<Vec<Acl>, ZkError> {
        self.tree.acl(path).map(|a| a.to_vec()).ok_or(ZkError::NoNode)
    }

    /// Serves a read-type request. Watch flags register watches for `conn`.
    pub(crate) fn read(&mut self, conn: ConnId, req: &Request) -> Result<Response, ZkError> {
        match req {
            Request::GetData { path, watch } => {
                let (data, stat) = self.get_data(conn, lookup(path))?;
                if *watch {
                    self.watch_room(conn, &[(Table::Data, path)])?;
                    self.add_watch(Table::Data, path, conn, mode::STANDARD);
                }
                Ok(Response::GetData { data, stat })
            }
            Request::Exists { path, watch } => self.exists(conn, path, *watch),
            Request::GetChildren { op, path, watch } => {
                let children = self.get_children(conn, lookup(path))?;
                if *watch {
                    self.watch_room(conn, &[(Table::Child, path)])?;
                    self.add_watch(Table::Child, path, conn, mode::STANDARD);
                }
                if *op == OpCode::GetChildren2 {
                    let stat = self.tree.stat(lookup(path)).expect("checked above");
                    return Ok(Response::GetChildren2 { children, stat });
                }
                Ok(Response::GetChildren { children })
            }
            Request::GetAcl { path } => self.get_acl(conn, lookup(path)),
            Request::GetAllChildrenNumber { path } => {
                let acl = self.node_acl(lookup(path))?;
                self.check(conn, &acl, perms::READ)?;
                let total = self.tree.all_children_number(lookup(path)).ok_or(ZkError::NoNode)?;
                // `DataTree.getAllChildrenNumber("")` counts the keys under "" + "/": every
                // node but the root's "" entry, so the "/" entry too (one more than for "/").
                let total = if path.is_empty() { total + 1 } else { total };
                Ok(Response::GetAllChildrenNumber { total })
            }
            Request::GetEphemerals { prefix } => Ok(self.get_ephemerals(conn, prefix)),
            Request::Sync { path } => Ok(Response::Sync { path: path.clone() }),
            Request::MultiRead(ops) => match self.multi_read(conn, ops) {
                (None, results) => Ok(results),
                (Some(err), _) => Err(err),
            },
            Request::WhoAmI => Ok(Response::WhoAmI(crate::reply::who_am_i(&self.conns[&conn].ids))),
            Request::AddWatch { path, mode: m } => {
                let modes = match m {
                    0 => [(Table::Data, mode::PERSISTENT), (Table::Child, mode::PERSISTENT)],
                    1 => [(Table::Data, mode::RECURSIVE), (Table::Data, mode::RECURSIVE)],
                    // `AddWatchMode.fromZooDefs` throws: MARSHALLINGERROR.
                    _ => return Err(ZkError::MarshallingError),
                };
                // Mode 1 names the data table twice: one entry.
                let entries = [(Table::Data, path.as_str()), (Table::Child, path.as_str())];
                self.watch_room(conn, &entries[..if *m == 0 { 2 } else { 1 }])?;
                for (table, bits) in modes {
                    self.add_watch(table, path, conn, bits);
                }
                Ok(Response::AddWatch)
            }
            Request::CheckWatches { path, watcher_type } => {
                self.watch_op(conn, path, *watcher_type, false).map(|_| Response::Empty)
            }
            Request::RemoveWatches { path, watcher_type } => {
                self.watch_op(conn, path, *watcher_type, true).map(|_| Response::Empty)
            }
            other => {
                debug_assert!(false, "not a local request: {other:?}");
                Err(ZkError::Unimplemented)
            }
        }
    }

    /// Refuses a request that would leave `conn` holding more than
    /// `Config::max_watches_per_session` watches, with QUOTAEXCEEDED and nothing set. zkr only:
    /// ZooKeeper's watch tables grow without bound, so one client could fill the server's memory
    /// with exists-watches on paths that need not exist. `wanted` may repeat an entry (it then
    /// counts more than once, erring towards refusal).
    fn watch_room(&self, conn: ConnId, wanted: &[(Table, &str)]) -> Result<(), ZkError> {
        let max = self.config.max_watches_per_session;
        let held = self.watches.count_for(conn);
        assert!(max == 0 || held <= max, "{conn:?} holds {held} watches, over {max}");
        if max == 0 {
            return Ok(());
        }
        let new = wanted.iter().filter(|(t, p)| self.watches.modes(*t, p, conn) == 0).count();
        if held + new > max {
            tracing::info!(?conn, held, new, max, "watch limit reached; QUOTAEXCEEDED");
            return Err(ZkError::QuotaExceeded);
        }
        assert!(held + new <= max);
        Ok(())
    }

    fn get_data(
        &self,
        conn: ConnId,
        path: &str,
    ) -> Result<(Option<Vec<u8>>, crate::types::Stat), ZkError> {
        let node = self.tree.get(path).ok_or(ZkError::NoNode)?;
        self.check(conn, &node.acl, perms::READ)?;
        let stat = self.tree.stat(path).expect("node exists");
        Ok((node.data.as_deref().map(<[u8]>::to_vec), stat))
    }

    fn get_children(&self, conn: ConnId, path: &str) -> Result<Vec<String>, ZkError> {
        let acl = self.node_acl(path)?;
        self.check(conn, &acl, perms::READ)?;
        Ok(self.tree.children(path).expect("node exists"))
    }

    fn exists(&mut self, conn: ConnId, path: &str, watch: bool) -> Result<Response, ZkError> {
        if path.contains('\0') {
            return Err(ZkError::BadArguments);
        }
        match self.tree.acl(lookup(path)).map(|a| a.to_vec()) {
            Some(acl) => {
                self.check(conn, &acl, perms::READ)?;
                if watch {
                    self.watch_room(conn, &[(Table::Data, path)])?;
                    self.add_watch(Table::Data, path, conn, mode::STANDARD);
                }
                Ok(Response::Stat(self.tree.stat(lookup(path)).expect("node exists")))
            }
            None => {
                if watch {
                    self.watch_room(conn, &[(Table::Data, path)])?;
                    self.add_watch(Table::Data, path, conn, mode::STANDARD);
                }
                Err(ZkError::NoNode)
            }
        }
    }

    fn get_acl(&self, conn: ConnId, path: &str) -> Result<Response, ZkError> {
        let acl = self.node_acl(path)?;
        self.check(conn, &acl, perms::READ | perms::ADMIN)?;
        let stat = self.tree.stat(path).expect("node exists");
        if self.check(conn, &acl, perms::ADMIN).is_ok() {
            return Ok(Response::GetAcl { acl, stat });
        }
        // Without ADMIN, digest hashes are masked (ZooKeeper 3.4.14+).
        let masked = acl
            .into_iter()
            .map(|mut a| {
                if a.id.scheme == "digest" {
                    let user = a.id.id.split(':').next().unwrap_or("").to_string();
                    a.id.id = format!("{user}:x");
                }
                a
            })
            .collect();
        Ok(Response::GetAcl { acl: masked, stat })
    }

    fn get_ephemerals(&self, conn: ConnId, prefix: &str) -> Response {
        let session = self.conns[&conn].session().expect("established");
        let all = self.tree.ephemerals(session);
        let everything = prefix.trim().is_empty() || prefix == "/";
        let paths = all.into_iter().filter(|p| everything || p.starts_with(prefix)).collect();
        Response::GetEphemerals { paths }
    }

    /// Serves a multiRead. A write op in it (the decoder lets through a list of writes only,
    /// never a mix) ends it, as ZooKeeper's "Invalid type of readOp": MARSHALLINGERROR, sent
    /// with the results gathered before it (see `serve_local`).
    pub(crate) fn multi_read(
        &mut self,
        conn: ConnId,
        ops: &[Request],
    ) -> (Option<ZkError>, Response) {
        let mut results = Vec::with_capacity(ops.len());
        let mut failed = None;
        for op in ops {
            let result = match op {
                Request::GetData { path, .. } => match self.get_data(conn, lookup(path)) {
                    Ok((data, stat)) => MultiResult::GetData { data, stat },
                    Err(err) => MultiResult::Error(err),
                },
                Request::GetChildren { path, .. } => match self.get_children(conn, lookup(path)) {
                    Ok(children) => MultiResult::GetChildren { children },
                    Err(err) => MultiResult::Error(err),
                },
                _ => {
                    failed = Some(ZkError::MarshallingError);
                    break;
                }
            };
            results.push(result);
        }
        assert!(results.len() <= ops.len());
        assert!(failed.is_none() || results.len() < ops.len(), "a failure stops the list");
        (failed, Response::Multi(results))
    }

    /// checkWatches / removeWatches on the calling connection's own watches.
    fn watch_op(
        &mut self,
        conn: ConnId,
        path: &str,
        kind: i32,
        remove: bool,
    ) -> Result<(), ZkError> {
        let all = mode::STANDARD | mode::PERSISTENT | mode::RECURSIVE;
        let targets: &[(Table, u8)] = match kind {
            1 => &[(Table::Child, mode::STANDARD)],
            2 => &[(Table::Data, mode::STANDARD)],
            3 => &[(Table::Data, all), (Table::Child, all)],
            4 => &[(Table::Data, mode::PERSISTENT), (Table::Child, mode::PERSISTENT)],
            5 => &[(Table::Data, mode::RECURSIVE)],
            // `WatcherType.fromInt` throws: MARSHALLINGERROR.
            _ => return Err(ZkError::MarshallingError),
        };
        let mut found = false;
        for (table, bits) in targets {
            if remove {
                found |= self.watches.remove(*table, path, conn, *bits);
            } else {
                found |= self.watches.modes(*table, path, conn) & bits != 0;
            }
        }
        if found { Ok(()) } else { Err(ZkError::NoWatcher) }
    }

    /// setWatches / setWatches2 after a reconnect: events for what changed since
    /// `relative_zxid` (zxid -1, not ACL-filtered), re-registration for the rest.
    pub(crate) fn set_watches(
        &mut self,
        conn: ConnId,
        req: &Request,
    ) -> Result<crate::proto::client::Response, ZkError> {
        let Request::SetWatches {
            relative_zxid,
            data,
            exist,
            child,
            persistent,
            persistent_recursive,
        } = req
        else {
            unreachable!("caller matched SetWatches")
        };
        // Checked whole, before anything is set: an error leaves the session's watches as
        // they were (the paths whose events go out at once are counted too: an upper bound).
        let wanted: Vec<(Table, &str)> = (data.iter().chain(exist).map(|p| (Table::Data, p)))
            .chain(child.iter().map(|p| (Table::Child, p)))
            .chain(persistent.iter().flat_map(|p| [(Table::Data, p), (Table::Child, p)]))
            .chain(persistent_recursive.iter().map(|p| (Table::Data, p)))
            .map(|(t, p)| (t, p.as_str()))
            .collect();
        self.watch_room(conn, &wanted)?;
        for path in data {
            match self.tree.stat(path) {
                None => self.send_event(conn, -1, EventType::NodeDeleted, path, None),
                Some(s) if s.mzxid > *relative_zxid => {
                    self.send_event(conn, -1, EventType::NodeDataChanged, path, None)
                }
                Some(_) => self.add_watch(Table::Data, path, conn, mode::STANDARD),
            }
        }
        for path in exist {
            match self.tree.stat(path) {
                Some(_) => self.send_event(conn, -1, EventType::NodeCreated, path, None),
                None => self.add_watch(Table::Data, path, conn, mode::STANDARD),
            }
        }
        for path in child {
            match self.tree.stat(path) {
                None => self.send_event(conn, -1, EventType::NodeDeleted, path, None),
                Some(s) if s.pzxid > *relative_zxid => {
                    self.send_event(conn, -1, EventType::NodeChildrenChanged, path, None)
                }
                Some(_) => self.add_watch(Table::Child, path, conn, mode::STANDARD),
            }
        }
        for path in persistent {
            self.add_watch(Table::Data, path, conn, mode::PERSISTENT);
            self.add_watch(Table::Child, path, conn, mode::PERSISTENT);
        }
        for path in persistent_recursive {
            self.add_watch(Table::Data, path, conn, mode::RECURSIVE);
        }
        Ok(Response::Empty)
    }
}
