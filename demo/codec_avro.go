package demo

import (
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/sr"
)

// The Avro schemas: the key is a record of the user id, so the table's
// primary key is the column id; the value's fields show the type map.
const (
	avroKeySchema = `{"type":"record","name":"UserKey","namespace":"sinkworker.demo",
 "fields":[{"name":"id","type":"long"}]}`
	avroValueSchema = `{"type":"record","name":"User","namespace":"sinkworker.demo","fields":[
 {"name":"id","type":"long"},
 {"name":"event","type":{"type":"enum","name":"Event","symbols":["USER_CREATED","POINTS_CHANGED"]}},
 {"name":"name","type":"string"},
 {"name":"email","type":["null","string"],"default":null},
 {"name":"points","type":"long"},
 {"name":"balance","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"signed_up","type":{"type":"int","logicalType":"date"}},
 {"name":"updated_at","type":{"type":"long","logicalType":"timestamp-millis"}}]}`
)

type avroKey struct {
	ID int64 `avro:"id"`
}

type avroUser struct {
	ID        int64     `avro:"id"`
	Event     string    `avro:"event"`
	Name      string    `avro:"name"`
	Email     *string   `avro:"email"`
	Points    int64     `avro:"points"`
	Balance   string    `avro:"balance"` // a decimal's exact text
	Tags      []string  `avro:"tags"`
	SignedUp  time.Time `avro:"signed_up"`
	UpdatedAt time.Time `avro:"updated_at"`
}

// avroCodec writes Avro in Confluent's wire format.
type avroCodec struct {
	key, value     *avro.Schema
	keyID, valueID int
}

func newAvroCodec(reg register, topic string) (*avroCodec, error) {
	c := &avroCodec{}
	var err error
	if c.key, err = avro.Parse(avroKeySchema); err != nil {
		return nil, fmt.Errorf("avro key schema: %w", err)
	}
	if c.value, err = avro.Parse(avroValueSchema); err != nil {
		return nil, fmt.Errorf("avro value schema: %w", err)
	}
	if c.keyID, err = reg(topic+"-key", sr.Schema{Schema: avroKeySchema, Type: sr.TypeAvro}); err != nil {
		return nil, err
	}
	if c.valueID, err = reg(topic+"-value", sr.Schema{Schema: avroValueSchema, Type: sr.TypeAvro}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *avroCodec) encode(ev *event) (record, error) {
	key, err := c.key.Encode(&avroKey{ID: int64(ev.id)})
	if err != nil {
		return record{}, err
	}
	rec := record{key: frame(c.keyID, nil, key), modelKey: strconv.Itoa(ev.id)}
	if ev.kind == "" {
		return rec, nil
	}
	email, ok := typedEmail(ev)
	u := avroUser{ID: int64(ev.id), Event: typedEvent(ev), Name: ev.name, Points: int64(ev.points),
		Balance: balance(ev.points), Tags: typedTags(ev), SignedUp: ev.signedUp, UpdatedAt: ev.at}
	if ok {
		u.Email = &email
	}
	body, err := c.value.Encode(&u)
	if err != nil {
		return record{}, err
	}
	rec.value = frame(c.valueID, nil, body)
	rec.row = typedRow("id", strconv.Itoa(ev.id), "event", jsonString(u.Event), "name", jsonString(ev.name),
		"email", jsonOptional(email, ok), "points", strconv.Itoa(ev.points), "balance", u.Balance,
		"tags", jsonStrings(u.Tags), "signed_up", jsonString(ev.signedUp.Format(time.DateOnly)),
		"updated_at", jsonString(rfc3339Millis(ev.at)))
	return rec, nil
}

func (c *avroCodec) badKinds() []badKind { return wireBadKinds("Avro") }

// balance is a user's balance, a quarter per point, as exact decimal text
// with two places.
func balance(points int) string {
	cents := points * 25
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}
