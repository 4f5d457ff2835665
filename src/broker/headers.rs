//! TEMPORARY STUB (replaced by the real matcher).
use amq_protocol::types::FieldTable;
#[derive(Debug, Clone)]
pub struct HeadersBinding {
    any: bool,
    args: FieldTable,
}
impl HeadersBinding {
    pub fn parse(args: &FieldTable) -> Result<HeadersBinding, String> {
        let any = matches!(args.inner().get("x-match"), Some(amq_protocol::types::AMQPValue::LongString(s)) if s.as_bytes() == b"any");
        Ok(HeadersBinding {
            any,
            args: args.clone(),
        })
    }
    pub fn matches(&self, h: Option<&FieldTable>) -> bool {
        let e = FieldTable::default();
        let h = h.unwrap_or(&e);
        let mut it = self
            .args
            .inner()
            .iter()
            .filter(|(k, _)| !k.as_str().starts_with("x-"));
        if self.any {
            it.any(|(k, v)| h.inner().get(k) == Some(v))
        } else {
            it.all(|(k, v)| h.inner().get(k) == Some(v))
        }
    }
}
