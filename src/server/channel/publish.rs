//! Publishing on a channel: content assembly, routing and storing, publisher
//! confirms (coalesced, and held until the store has synced persistent
//! messages) and transactions.

use super::*;

impl Channel {
    pub(super) fn tx_method(
        &mut self,
        ctx: &mut Context,
        method: tx::AMQPMethod,
    ) -> AmqpResult<()> {
        let not_transactional = || AmqpError::precondition_failed("channel is not transactional");
        match method {
            tx::AMQPMethod::Select(_) => {
                if self.confirms.is_some() {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                self.transaction.get_or_insert_with(Transaction::default);
                self.reply(
                    ctx,
                    AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
                );
                Ok(())
            }
            tx::AMQPMethod::Commit(_) => {
                let tx = std::mem::take(self.transaction.as_mut().ok_or_else(not_transactional)?);
                let mut last_ticket = None;
                let mut refused = false;
                for routed in tx.publishes {
                    let outcome = self.deliver_routed(ctx, routed);
                    last_ticket = outcome.ticket.or(last_ticket);
                    refused |= outcome.rejected;
                }
                for (how, settled) in tx.settlements {
                    self.settle(settled.into_iter().map(|(_, u)| u), how);
                }
                // A queue refused a publish (length limit): what was accepted stays.
                if refused {
                    return Err(AmqpError::precondition_failed("partial tx completion"));
                }
                // commit-ok promises the persistent publishes are on disk.
                match last_ticket {
                    Some(ticket) => self.commits_on_disk.push_back(ticket),
                    None if self.commits_on_disk.is_empty() => self.reply(
                        ctx,
                        AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
                    ),
                    // Keep commit-oks in order behind one still waiting for the disk.
                    None => self.commits_on_disk.push_back(0),
                }
                Ok(())
            }
            tx::AMQPMethod::Rollback(_) => {
                let tx = std::mem::take(self.transaction.as_mut().ok_or_else(not_transactional)?);
                // Rolled-back acks leave their messages unacknowledged, as before.
                for (_, settled) in tx.settlements {
                    self.unacked.extend(settled);
                }
                self.reply(
                    ctx,
                    AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
                );
                Ok(())
            }
            _ => Err(unimplemented()),
        }
    }

    /// Handles a content header frame.
    pub fn handle_header(
        &mut self,
        ctx: &mut Context,
        header: ContentHeader,
        payload: Bytes,
    ) -> AmqpResult<()> {
        let Some(publish) = self.publish.as_mut().filter(|p| p.header.is_none()) else {
            return Err(AmqpError::unexpected_frame(
                "expected method frame, got non method frame instead",
            ));
        };
        if header.class_id != 60 {
            return Err(AmqpError::unexpected_frame(format!(
                "expected content header for class 60, got one for class {} instead",
                header.class_id
            )));
        }
        if header.body_size > ctx.max_message_size {
            self.publish = None;
            return Err(AmqpError::precondition_failed(format!(
                "message size {} is larger than max size {}",
                header.body_size, ctx.max_message_size
            )));
        }
        publish.header = Some((header, payload.slice(PROPERTIES_OFFSET..)));
        self.finish_publish_if_complete(ctx)
    }

    /// Handles a content body frame.
    pub fn handle_body(&mut self, ctx: &mut Context, payload: Bytes) -> AmqpResult<()> {
        let Some(publish) = self.publish.as_mut() else {
            return Err(AmqpError::unexpected_frame(
                "expected method frame, got non method frame instead",
            ));
        };
        let Some((header, _)) = &publish.header else {
            return Err(AmqpError::unexpected_frame(
                "expected content header for class 60, got non content header frame instead",
            ));
        };
        publish.received += payload.len() as u64;
        if publish.received > header.body_size {
            return Err(AmqpError::unexpected_frame(format!(
                "received body of {} bytes, more than the announced {}",
                publish.received, header.body_size
            )));
        }
        publish.body.push(payload);
        self.finish_publish_if_complete(ctx)
    }

    fn finish_publish_if_complete(&mut self, ctx: &mut Context) -> AmqpResult<()> {
        let complete = matches!(&self.publish, Some(PendingPublish { header: Some((h, _)), received, .. }) if *received == h.body_size);
        if !complete {
            return Ok(());
        }
        let publish = self.publish.take().expect("checked above");
        let (_, properties) = publish.header.expect("checked above");
        let body = match publish.body.len() {
            0 => Bytes::new(),
            1 => publish.body.into_iter().next().expect("one part"),
            _ => {
                let mut joined = BytesMut::with_capacity(publish.received as usize);
                publish
                    .body
                    .iter()
                    .for_each(|part| joined.extend_from_slice(part));
                joined.freeze()
            }
        };
        let (exchange, routing_key) =
            self.address(publish.exchange.as_str(), publish.routing_key.as_str());
        let mut message = Message::new(exchange, routing_key, properties, body);
        // Checked once the content is in, as RabbitMQ (which reads whole
        // publishes) checks it; the channel's cache keeps this off the hot path.
        self.authorize(
            ctx,
            ResourceKind::Exchange,
            publish.exchange.as_str(),
            Permission::Write,
        )?;
        let sender_keys = message.take_sender_keys();
        let mut queues = Vec::new();
        ctx.vhost.route(
            publish.exchange.as_str(),
            &message,
            &sender_keys,
            &mut queues,
        )?;
        message.check_properties(ctx.access.user())?;
        message.properties = self.route_replies_here(message.properties)?;
        *ctx.received += 1;
        let routed = Routed {
            message,
            queues,
            mandatory: publish.mandatory,
        };
        if let Some(tx) = &mut self.transaction {
            tx.publishes.push(routed);
            return Ok(());
        }
        // As RabbitMQ does, a returned message is confirmed on its own, right
        // after its basic.return: clients pair a return with the next confirm.
        let returned = routed.mandatory && routed.queues.is_empty();
        if returned {
            self.flush_confirms(ctx);
        }
        let outcome = self.deliver_routed(ctx, routed);
        if let Some(confirms) = &mut self.confirms {
            confirms.published += 1;
            // A publish refused by any of its queues is nacked, as in RabbitMQ.
            if outcome.rejected || outcome.ticket.is_some() {
                confirms.waiting.push_back(WaitingConfirm {
                    seq: confirms.published,
                    ticket: outcome.ticket.unwrap_or(0),
                    nack: outcome.rejected,
                });
            }
        }
        if outcome.rejected {
            self.flush_confirms(ctx);
        }
        if returned {
            self.flush_confirms(ctx);
        }
        Ok(())
    }

    /// The shared names for a publish's exchange and routing key.
    fn address(&mut self, exchange: &str, routing_key: &str) -> (Arc<str>, Arc<str>) {
        let (last_exchange, last_key) = &mut self.last_address;
        if &**last_exchange != exchange {
            *last_exchange = Arc::from(exchange);
        }
        if &**last_key != routing_key {
            *last_key = Arc::from(routing_key);
        }
        (last_exchange.clone(), last_key.clone())
    }

    /// Hands a routed message to its queues (or returns it if it is
    /// mandatory and unroutable).
    pub(super) fn deliver_routed(&mut self, ctx: &mut Context, routed: Routed) -> Enqueueing {
        if routed.queues.is_empty() {
            if routed.mandatory {
                let message = &routed.message;
                let ret = basic::Return {
                    reply_code: ReplyCode::NoRoute as u16,
                    reply_text: "NO_ROUTE".into(),
                    exchange: (&*message.exchange).into(),
                    routing_key: (&*message.routing_key).into(),
                };
                self.reply(ctx, AMQPClass::Basic(basic::AMQPMethod::Return(ret)));
                encode::content(
                    ctx.out,
                    self.id,
                    &message.properties,
                    &message.body,
                    ctx.frame_max,
                );
            }
            return Enqueueing::default();
        }
        let outcome = ctx.vhost.enqueue(routed.message, &routed.queues);
        if let Some(queue) = &outcome.crowded {
            *ctx.crowded = Some(queue.clone());
        }
        outcome
    }

    /// Confirms every publish whose fate is known: acks (coalesced with
    /// multiple) those routed and, if persistent, on disk; nacks those a queue refused.
    pub(super) fn flush_confirms(&mut self, ctx: &mut Context) {
        let id = self.id;
        let Some(confirms) = &mut self.confirms else {
            return;
        };
        let ack_up_to = |confirms: &mut Confirms, out: &mut BytesMut, up_to: u64| {
            if up_to > confirms.confirmed {
                let multiple = up_to - confirms.confirmed > 1;
                confirms.confirmed = up_to;
                encode::basic_ack(out, id, up_to, multiple);
            }
        };
        while let Some(waiting) = confirms.waiting.front() {
            if waiting.ticket > ctx.synced {
                break;
            }
            let waiting = confirms.waiting.pop_front().expect("checked above");
            if waiting.nack {
                ack_up_to(confirms, ctx.out, waiting.seq - 1);
                encode::basic_nack(ctx.out, id, waiting.seq);
                confirms.confirmed = waiting.seq;
            }
        }
        let up_to = confirms
            .waiting
            .front()
            .map_or(confirms.published, |w| w.seq - 1);
        ack_up_to(confirms, ctx.out, up_to);
    }

    /// Whether replies wait for the store to sync.
    pub fn awaits_disk(&self) -> bool {
        !self.commits_on_disk.is_empty()
            || self
                .confirms
                .as_ref()
                .is_some_and(|c| !c.waiting.is_empty())
    }
}
