//! The namespace-wide seg6 tunnel source (`ip sr tunsrc set|show`), over generic netlink
//! ([`super::genl`]): two commands with one 16-byte attribute each.
use std::net::Ipv6Addr;

use super::error::{NlFailure, RouteError};
use super::genl::{attr, Genl, GENL_HDRLEN, NLM_F_ACK, NLM_F_REQUEST};

const SEG6_FAMILY: &str = "SEG6";
const SEG6_CMD_SET_TUNSRC: u8 = 3;
const SEG6_CMD_GET_TUNSRC: u8 = 4;
const SEG6_ATTR_DST: u16 = 1;
const SEG6_GENL_VERSION: u8 = 1;

/// A generic-netlink socket, opened with the rtnetlink one so both live in the same namespace.
pub(crate) struct Seg6Genl {
    genl: Genl,
}

impl Seg6Genl {
    pub(crate) fn open() -> Result<Seg6Genl, RouteError> {
        Ok(Seg6Genl {
            genl: Genl::open()?,
        })
    }

    pub(crate) async fn set_tunsrc(&self, addr: Ipv6Addr) -> Result<(), NlFailure> {
        let family = self.family().await?;
        self.genl
            .exchange(
                family,
                SEG6_GENL_VERSION,
                SEG6_CMD_SET_TUNSRC,
                NLM_F_REQUEST | NLM_F_ACK,
                &[(SEG6_ATTR_DST, &addr.octets())],
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn get_tunsrc(&self) -> Result<Ipv6Addr, NlFailure> {
        let family = self.family().await?;
        let replies = self
            .genl
            .exchange(
                family,
                SEG6_GENL_VERSION,
                SEG6_CMD_GET_TUNSRC,
                NLM_F_REQUEST | NLM_F_ACK,
                &[],
            )
            .await?;
        replies
            .iter()
            .find_map(|p| attr(p.get(GENL_HDRLEN..)?, SEG6_ATTR_DST))
            .and_then(|v| <[u8; 16]>::try_from(v).ok())
            .map(Ipv6Addr::from)
            .ok_or_else(|| NlFailure::local("the kernel's reply carries no SEG6_ATTR_DST"))
    }

    async fn family(&self) -> Result<u16, NlFailure> {
        self.genl.family(SEG6_FAMILY).await
    }
}
