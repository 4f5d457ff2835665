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
                for routed in tx.publishes {
                    last_ticket = self.deliver_routed(ctx, routed).or(last_ticket);
                }
                self.settle(tx.acks.into_iter().map(|(_, u)| u), false);
                self.settle(tx.rejects.into_iter().map(|(_, u)| u), true);
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
                self.unacked.extend(tx.acks);
                self.unacked.extend(tx.rejects);
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
        let mut message = Message {
            exchange: Arc::from(publish.exchange.as_str()),
            routing_key: Arc::from(publish.routing_key.as_str()),
            properties,
            body,
            expires_at: None,
            stored: None,
        };
        let mut queues = Vec::new();
        ctx.vhost
            .route(publish.exchange.as_str(), &message, &mut queues)?;
        message.check_properties(ctx.user)?;
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
        let ticket = self.deliver_routed(ctx, routed);
        if let Some(confirms) = &mut self.confirms {
            confirms.published += 1;
            if let Some(ticket) = ticket {
                confirms.on_disk.push_back((confirms.published, ticket));
            }
        }
        if returned {
            self.flush_confirms(ctx);
        }
        Ok(())
    }

    /// Hands a routed message to its queues, storing it first if it is
    /// persistent and reaches durable queues; returns the store ticket then.
    pub(super) fn deliver_routed(&mut self, ctx: &mut Context, routed: Routed) -> Option<Ticket> {
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
            return None;
        }
        let mut message = routed.message;
        let durable: Vec<QueueId> = routed
            .queues
            .iter()
            .filter_map(|q| q.config.persistence.as_ref().map(|p| p.id))
            .collect();
        let mut ticket = None;
        if !durable.is_empty() && message.is_persistent() {
            let parts = MessageParts {
                exchange: &message.exchange,
                routing_key: &message.routing_key,
                properties: &message.properties,
                body: &message.body,
                expires_at_ms: message.expires_at_unix_ms(),
            };
            let (location, written) = ctx.vhost.store().publish(&durable, &parts);
            message.stored = Some(location);
            ticket = Some(written);
        }
        let message = Arc::new(message);
        for queue in &routed.queues {
            if queue.publish(message.clone()) {
                *ctx.crowded = Some(queue.clone());
            }
        }
        ticket
    }

    /// Acks (coalesced with multiple) every publish whose message is safe: routed, and on disk if persistent.
    pub(super) fn flush_confirms(&mut self, ctx: &mut Context) {
        if let Some(confirms) = &mut self.confirms {
            while confirms
                .on_disk
                .front()
                .is_some_and(|&(_, t)| t <= ctx.synced)
            {
                confirms.on_disk.pop_front();
            }
            let up_to = confirms
                .on_disk
                .front()
                .map_or(confirms.published, |&(seq, _)| seq - 1);
            if up_to > confirms.confirmed {
                let multiple = up_to - confirms.confirmed > 1;
                confirms.confirmed = up_to;
                encode::basic_ack(ctx.out, self.id, up_to, multiple);
            }
        }
    }

    /// Whether replies wait for the store to sync.
    pub fn awaits_disk(&self) -> bool {
        !self.commits_on_disk.is_empty()
            || self
                .confirms
                .as_ref()
                .is_some_and(|c| !c.on_disk.is_empty())
    }
}
