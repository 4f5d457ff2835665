//! Consuming on a channel: consumers, deliveries from the mailbox, basic.get,
//! and settling deliveries with ack, nack, reject and recover.

use super::*;
use crate::broker::queue_settings::integer;
use crate::broker::vhost::DIRECT_REPLY_TO;

impl Channel {
    pub(super) fn consume(&mut self, ctx: &mut Context, c: basic::Consume) -> AmqpResult<()> {
        let tag: Arc<str> = if c.consumer_tag.as_str().is_empty() {
            Arc::from(names::generate("amq.ctag"))
        } else {
            Arc::from(c.consumer_tag.as_str())
        };
        if self.consumers.contains_key(&tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        let queue = if c.queue.as_str() == DIRECT_REPLY_TO {
            self.consume_replies(ctx, &c)?
        } else {
            let name = self.queue_name(c.queue.as_str())?;
            self.authorize(ctx, ResourceKind::Queue, &name, Permission::Read)?;
            ctx.vhost.queue_for(&name, ctx.connection)?
        };
        let priority = match c.arguments.inner().get("x-priority") {
            None => 0,
            Some(value) => integer(value).map_err(|problem| {
                AmqpError::precondition_failed(format!(
                    "invalid arg 'x-priority' for {}: {problem}",
                    queue.describe()
                ))
            })?,
        };
        let prefetch = if c.no_ack { 0 } else { self.consumer_prefetch };
        let credit = Arc::new(Credit::new(prefetch, self.credit.clone()));
        let consumer = Consumer {
            tag: tag.clone(),
            channel: self.id,
            connection: ctx.connection,
            mailbox: ctx.mailbox.get().clone(),
            credit,
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            priority,
        };
        queue.add_consumer(consumer)?;
        // consume-ok still precedes every delivery: deliveries arrive through the
        // mailbox, which this connection drains only after this method returns.
        if !c.nowait {
            let ok = basic::ConsumeOk {
                consumer_tag: ShortString::from(&*tag),
            };
            self.reply(ctx, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)));
        }
        self.consumers.insert(tag, ChannelConsumer { queue });
        Ok(())
    }

    /// Detaches a consumer, returning `returned` deliveries to its queue in
    /// the same step; deletes the queue if it was the last consumer of an
    /// auto-delete queue.
    pub(super) fn cancel_consumer(&mut self, ctx: &mut Context, tag: &str, returned: Vec<Unacked>) {
        let Some(consumer) = self.consumers.remove(tag) else {
            return self.settle(returned, Settlement::Requeue);
        };
        let returned = returned
            .into_iter()
            .map(|unacked| {
                if let Some(credit) = &unacked.credit {
                    credit.release(1);
                }
                unacked.message
            })
            .collect();
        let removal = consumer
            .queue
            .remove_consumer(ctx.connection, self.id, tag, returned);
        self.close_replies(ctx, &consumer.queue);
        if removal == ConsumerRemoval::RemovedLastOfAutoDelete {
            ctx.vhost.remove_queue(&consumer.queue);
        }
    }

    pub(super) fn get(&mut self, ctx: &mut Context, g: basic::Get) -> AmqpResult<()> {
        let name = self.queue_name(g.queue.as_str())?;
        self.authorize(ctx, ResourceKind::Queue, &name, Permission::Read)?;
        let queue = ctx.vhost.queue_for(&name, ctx.connection)?;
        let Some((message, message_count)) = queue.get(g.no_ack) else {
            self.reply(
                ctx,
                AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
            );
            return Ok(());
        };
        let delivery_tag = self.next_tag();
        let ok = basic::GetOk {
            delivery_tag,
            redelivered: message.redelivered(),
            exchange: (&*message.message.exchange).into(),
            routing_key: (&*message.message.routing_key).into(),
            message_count,
        };
        self.reply(ctx, AMQPClass::Basic(basic::AMQPMethod::GetOk(ok)));
        encode::content(
            ctx.out,
            self.id,
            &message.message.properties,
            &message.message.body,
            ctx.frame_max,
        );
        if !g.no_ack {
            self.unacked.insert(
                delivery_tag,
                Unacked {
                    queue,
                    message,
                    credit: None,
                    delivered_at: ctx.now,
                },
            );
        }
        Ok(())
    }

    fn next_tag(&mut self) -> u64 {
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        tag
    }

    /// Removes the deliveries an ack/nack/reject names, or fails as RabbitMQ does.
    pub(super) fn take_unacked(
        &mut self,
        delivery_tag: u64,
        multiple: bool,
    ) -> AmqpResult<Vec<(u64, Unacked)>> {
        if multiple && delivery_tag == 0 {
            return Ok(std::mem::take(&mut self.unacked).into_iter().collect());
        }
        if !self.unacked.contains_key(&delivery_tag) {
            return Err(AmqpError::precondition_failed(format!(
                "unknown delivery tag {delivery_tag}"
            )));
        }
        if multiple {
            let rest = self.unacked.split_off(&(delivery_tag + 1));
            Ok(std::mem::replace(&mut self.unacked, rest)
                .into_iter()
                .collect())
        } else {
            let unacked = self.unacked.remove(&delivery_tag).expect("checked above");
            Ok(vec![(delivery_tag, unacked)])
        }
    }

    pub(super) fn reject(
        &mut self,
        delivery_tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> AmqpResult<()> {
        let settled = self.take_unacked(delivery_tag, multiple)?;
        let how = if requeue {
            Settlement::Requeue
        } else {
            Settlement::Discard
        };
        self.settle_or_hold(settled, how);
        Ok(())
    }

    /// Settles deliveries now, or at commit on a transactional channel.
    pub(super) fn settle_or_hold(&mut self, settled: Vec<(u64, Unacked)>, how: Settlement) {
        match &mut self.transaction {
            Some(tx) => tx.settlements.push((how, settled)),
            None => self.settle(settled.into_iter().map(|(_, u)| u), how),
        }
    }

    /// Finishes deliveries: drops them, dead-letters them, or puts them back in their queues.
    pub(super) fn settle(&mut self, settled: impl IntoIterator<Item = Unacked>, how: Settlement) {
        let mut by_queue: Vec<(Arc<Queue>, Vec<QueuedMessage>)> = Vec::new();
        for unacked in settled {
            if let Some(credit) = &unacked.credit {
                credit.release(1);
                self.credit_released = true;
            }
            match by_queue
                .iter_mut()
                .find(|(q, _)| Arc::ptr_eq(q, &unacked.queue))
            {
                Some((_, messages)) => messages.push(unacked.message),
                None => by_queue.push((unacked.queue, vec![unacked.message])),
            }
        }
        for (queue, messages) in by_queue {
            match how {
                Settlement::Ack => queue.settle(&messages, false),
                Settlement::Discard => queue.settle(&messages, true),
                Settlement::Requeue => queue.requeue(messages),
            }
        }
    }

    pub(super) fn recover(&mut self, requeue: bool) -> AmqpResult<()> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let all = std::mem::take(&mut self.unacked);
        self.settle(all.into_values(), Settlement::Requeue);
        Ok(())
    }

    /// Writes a delivery from the mailbox, or gives it back if its consumer is gone.
    pub fn deliver(
        &mut self,
        ctx: &mut Context,
        consumer_tag: &Arc<str>,
        queue: Arc<Queue>,
        message: QueuedMessage,
        credit: Option<Arc<Credit>>,
    ) {
        if self.closing || !self.consumers.contains_key(consumer_tag) {
            if let Some(credit) = credit {
                credit.release(1);
            }
            queue.requeue([message]);
            return;
        }
        let delivery_tag = self.next_tag();
        let m = &message.message;
        encode::deliver(
            ctx.out,
            self.id,
            consumer_tag,
            delivery_tag,
            message.redelivered(),
            &m.exchange,
            &m.routing_key,
        );
        encode::content(ctx.out, self.id, &m.properties, &m.body, ctx.frame_max);
        if credit.is_some() {
            self.unacked.insert(
                delivery_tag,
                Unacked {
                    queue,
                    message,
                    credit,
                    delivered_at: ctx.now,
                },
            );
        }
    }

    /// Tells the client its consumer's queue is gone (consumer_cancel_notify).
    pub fn consumer_cancelled(&mut self, ctx: &mut Context, consumer_tag: &str, notify: bool) {
        if self.consumers.remove(consumer_tag).is_some() && notify && !self.closing {
            let cancel = basic::Cancel {
                consumer_tag: consumer_tag.into(),
                nowait: true,
            };
            self.reply(ctx, AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)));
        }
    }
}
