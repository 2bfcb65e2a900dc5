package demo

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// register puts a schema under a subject and returns its id.
type register func(subject string, s sr.Schema) (int, error)

// setUpCodec makes the run's codec. The typed formats start franz-go's
// in-memory schema registry (srfake, an HTTP server on 127.0.0.1) and
// register the key and value schemas there under the topic's subjects
// (<topic>-key, <topic>-value), as Confluent's serializers do.
func (r *run) setUpCodec(ctx context.Context) error {
	if r.opts.Format == FormatJSON {
		r.codec = jsonCodec{}
		return nil
	}
	reg := srfake.New()
	r.defer_(reg.Close)
	r.registryURL = reg.URL()
	cl, err := sr.NewClient(sr.URLs(r.registryURL))
	if err != nil {
		return fmt.Errorf("schema registry client: %w", err)
	}
	var ids []string
	reg1 := func(subject string, s sr.Schema) (int, error) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ss, err := cl.CreateSchema(rctx, subject, s)
		if err != nil {
			return 0, fmt.Errorf("register %s: %w", subject, err)
		}
		ids = append(ids, subject+" id "+strconv.Itoa(ss.ID))
		return ss.ID, nil
	}
	switch r.opts.Format {
	case FormatAvro:
		r.codec, err = newAvroCodec(reg1, r.names.topic)
	case FormatProtobuf:
		r.codec, err = newProtobufCodec(reg1, r.names.topic)
	}
	if err != nil {
		return err
	}
	r.say("  registry:   embedded srfake (in-process) on %s; %s", r.registryURL, strings.Join(ids, ", "))
	return nil
}

// frame puts Confluent's wire-format header (magic byte 0, the schema id,
// for Protobuf the message indexes) in front of a body.
func frame(id int, index []int, body []byte) []byte {
	b, _ := new(sr.ConfluentHeader).AppendEncode(make([]byte, 0, 6+len(body)), id, index) // never fails
	return append(b, body...)
}

// typedEmail is a user's email in the typed formats: none for every
// third user, so a nullable column shows a null.
func typedEmail(ev *event) (string, bool) {
	if ev.id%3 == 0 {
		return "", false
	}
	return ev.key() + "@example.com", true
}

// typedTags are a user's tags: "early" for every seventh user, and a tier
// by points.
func typedTags(ev *event) []string {
	tags := []string{}
	if ev.id%7 == 0 {
		tags = append(tags, "early")
	}
	switch {
	case ev.points >= 1000:
		tags = append(tags, "gold")
	case ev.points >= 300:
		tags = append(tags, "silver")
	}
	return tags
}

// typedEvent is the event's enum symbol.
func typedEvent(ev *event) string {
	if ev.kind == eventCreated {
		return "USER_CREATED"
	}
	return "POINTS_CHANGED"
}

// jsonString, jsonStrings and jsonOptional write a model row's values as
// JSON text: a string, an array of strings, a string or null.
func jsonString(s string) string { return strconv.Quote(s) }

func jsonStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ",") + "]"
}

func jsonOptional(s string, ok bool) string {
	if !ok {
		return "null"
	}
	return strconv.Quote(s)
}

// rfc3339Millis is t as RFC 3339 text to the millisecond.
func rfc3339Millis(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z07:00") }
