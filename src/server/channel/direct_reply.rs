//! Direct reply-to: RPC replies without a reply queue.
//!
//! A client consumes (no-ack) from the pseudo-queue `amq.rabbitmq.reply-to`
//! and publishes requests with that name as `reply_to`; Warren rewrites it to
//! `amq.rabbitmq.reply-to.<token>`, a name the responder publishes to through
//! the default exchange and that reaches the requesting channel directly.

use amq_protocol::protocol::basic::AMQPProperties;

use super::*;
use crate::broker::message::encode_properties;
use crate::broker::vhost::DIRECT_REPLY_TO;

/// The `reply_to` property's flag bit.
const FLAG_REPLY_TO: u16 = 1 << 9;

impl Channel {
    /// `basic.consume` from `amq.rabbitmq.reply-to`.
    pub(super) fn consume_replies(
        &mut self,
        ctx: &mut Context,
        c: &basic::Consume,
    ) -> AmqpResult<Arc<Queue>> {
        if !c.no_ack {
            return Err(AmqpError::precondition_failed(
                "reply consumer cannot acknowledge",
            ));
        }
        if self.direct_reply.is_some() {
            return Err(AmqpError::precondition_failed("reply consumer already set"));
        }
        let queue = ctx.vhost.open_reply_queue(ctx.connection);
        self.direct_reply = Some(queue.clone());
        Ok(queue)
    }

    /// Closes the reply pseudo-queue when its consumer goes.
    pub(super) fn close_replies(&mut self, ctx: &mut Context, queue: &Arc<Queue>) {
        if self
            .direct_reply
            .as_ref()
            .is_some_and(|reply| Arc::ptr_eq(reply, queue))
        {
            self.direct_reply = None;
            ctx.vhost.close_reply_queue(queue);
        }
    }

    /// Rewrites a `reply_to` of `amq.rabbitmq.reply-to` to this channel's reply
    /// queue; without a reply consumer the publish fails as in RabbitMQ.
    pub(super) fn route_replies_here(&self, properties: Bytes) -> AmqpResult<Bytes> {
        let flags = match properties.get(..2) {
            Some(&[high, low]) => u16::from_be_bytes([high, low]),
            _ => return Ok(properties),
        };
        if flags & FLAG_REPLY_TO == 0 {
            return Ok(properties);
        }
        let decoded: Option<AMQPProperties> =
            amq_protocol::protocol::basic::parse_properties(&properties[..])
                .ok()
                .map(|(_, p)| p);
        let Some(decoded) = decoded.filter(|p| {
            p.reply_to()
                .as_ref()
                .is_some_and(|r| r.as_str() == DIRECT_REPLY_TO)
        }) else {
            return Ok(properties);
        };
        let Some(queue) = &self.direct_reply else {
            return Err(AmqpError::precondition_failed(
                "fast reply consumer does not exist",
            ));
        };
        let rewritten = decoded.with_reply_to(queue.name().into());
        Ok(encode_properties(&rewritten).unwrap_or(properties))
    }
}
