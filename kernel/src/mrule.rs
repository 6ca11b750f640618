//! The `ip -6 mrule iif <wan> lookup <table>` that makes the kernel use a non-default MRT6
//! table for the MMA's (MMA, G) entries. Multicast routing rules are rtnetlink rules of
//! family RTNL_FAMILY_IP6MR, which [`KObject`](crate::route::KObject)'s rules (family inet6) do
//! not cover; tagged with our protocol number like every rule we install.
use futures::StreamExt;
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::route::outcome_of;
use mipcast_proto::Outcome;

/// RTNL_FAMILY_IP6MR (linux/rtnetlink.h).
const RTNL_FAMILY_IP6MR: u8 = 129;

#[derive(Debug, thiserror::Error)]
pub enum MruleError {
    #[error("{what} the mrule (pref {pref} iif {iif} lookup {table}): {text}")]
    Kernel {
        what: &'static str,
        pref: u32,
        iif: String,
        table: u32,
        text: String,
    },
}

/// One multicast routing rule of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mrule {
    pub pref: u32,
    pub iif: String,
    pub table: u32,
    pub protocol: u8,
}

impl Mrule {
    fn message(&self) -> RuleMessage {
        let mut m = RuleMessage::default();
        m.header.family = AddressFamily::from(RTNL_FAMILY_IP6MR);
        m.header.table = u8::try_from(self.table).unwrap_or(0);
        // Without an explicit action the kernel stores one that matches and drops.
        m.header.action = RuleAction::ToTable;
        m.attributes.push(RuleAttribute::Priority(self.pref));
        m.attributes.push(RuleAttribute::Iifname(self.iif.clone()));
        m.attributes.push(RuleAttribute::Table(self.table));
        m.attributes
            .push(RuleAttribute::Protocol(RouteProtocol::from(self.protocol)));
        m
    }

    /// Adds the rule; one already there is fine.
    pub async fn install(&self) -> Result<(), MruleError> {
        let message = RouteNetlinkMessage::NewRule(self.message());
        let result = self
            .request(
                message,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
            .await;
        self.judge(result, false, "adding")
    }

    /// Deletes the rule; one already gone is fine.
    pub async fn remove(&self) -> Result<(), MruleError> {
        let message = RouteNetlinkMessage::DelRule(self.message());
        let result = self.request(message, NLM_F_REQUEST | NLM_F_ACK).await;
        self.judge(result, true, "deleting")
    }

    /// The one errno policy: an add of what is there, or a delete of what is gone, is done.
    fn judge(
        &self,
        result: Result<(), i32>,
        delete: bool,
        what: &'static str,
    ) -> Result<(), MruleError> {
        let Err(errno) = result else { return Ok(()) };
        match outcome_of(Some(errno), String::new) {
            Outcome::AlreadyPresent if !delete => Ok(()),
            Outcome::AlreadyGone if delete => Ok(()),
            _ => Err(self.error(what, errno)),
        }
    }

    fn error(&self, what: &'static str, errno: i32) -> MruleError {
        MruleError::Kernel {
            what,
            pref: self.pref,
            iif: self.iif.clone(),
            table: self.table,
            text: std::io::Error::from_raw_os_error(errno).to_string(),
        }
    }

    /// One acknowledged request on a short-lived connection; Err(errno) on failure.
    async fn request(&self, message: RouteNetlinkMessage, flags: u16) -> Result<(), i32> {
        let (connection, mut handle, _) =
            rtnetlink::new_connection().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let task = tokio::spawn(connection);
        let mut request = NetlinkMessage::from(message);
        request.header.flags = flags;
        let result = async {
            let mut replies = handle.request(request).map_err(|_| libc::EIO)?;
            while let Some(reply) = replies.next().await {
                if let NetlinkPayload::Error(e) = reply.payload {
                    if let Some(code) = e.code {
                        return Err(code.get().saturating_abs());
                    }
                }
            }
            Ok(())
        }
        .await;
        task.abort();
        result
    }
}
