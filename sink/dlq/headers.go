// Package dlq owns sinkworker's dead letters: the headers a letter carries
// (Kafka Connect's names, so existing tooling reads them), the producer that
// sends a partition's rejected records to their dead-letter topic and waits
// for the acknowledgements (Producer), the creation of missing dead-letter
// topics at start-up (EnsureTopics), and the reading of a letter back into
// its source record for redrive (SourceOf).
//
// Use: p := dlq.NewProducer(cl, cfg.DLQTopic, log, count); err := p.Send(ctx,
// rejections) before the batch transaction commits. Of sinkworker's
// packages it imports only decode, for the Rejection it sends.
package dlq

// Dead-letter headers: Kafka Connect's names, so existing tooling reads them.
const (
	// HeaderTopic is the source record's topic.
	HeaderTopic = "__connect.errors.topic"
	// HeaderPartition is the source record's partition, in decimal.
	HeaderPartition = "__connect.errors.partition"
	// HeaderOffset is the source record's offset, in decimal.
	HeaderOffset = "__connect.errors.offset"
	// HeaderClass is the dead-letter class (decode, key, too_large, data,
	// constraint, rejected).
	HeaderClass = "__connect.errors.exception.class.name"
	// HeaderMessage is the reason; it may quote the record.
	HeaderMessage = "__connect.errors.exception.message"
)

// HeaderTimestamp is the dead letter's source record timestamp, in
// milliseconds since the epoch, which redrive gives the row. The letter's
// own timestamp is the time of dead-lettering: the dead-letter topic's
// retention counts from then, not from the source record's time.
const HeaderTimestamp = "__sinkworker.timestamp"

// Headers of a dead letter that the dead-letter topic refused whole (its
// max.message.bytes is below the letter's size) and that was sent again
// without parts of the source record, so that the partition moves on. Each
// holds the size in bytes of what was left out, in decimal; the source
// record itself stays at its topic, partition and offset until retention
// removes it.
const (
	// HeaderValueDropped: the letter's value is empty (never null, so no
	// tool reads it as a tombstone) instead of the record's value.
	HeaderValueDropped = "__sinkworker.value.dropped"
	// HeaderKeyDropped: the letter has no key; set only when the letter
	// did not fit without its value either (a huge key), and then the
	// value is dropped too.
	HeaderKeyDropped = "__sinkworker.key.dropped"
	// HeaderHeadersDropped: the record's own headers are left out, with
	// the key; the value is the sum of their keys' and values' sizes.
	HeaderHeadersDropped = "__sinkworker.headers.dropped"
)
