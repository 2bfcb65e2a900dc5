package demo

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// story generates the user service's events: a user is created
// (user-created), earns and spends points (points-changed), and now and
// then deletes the account (a tombstone); a deleted user may sign up again.
// Keys are user ids, so one user's events stay in order on one partition.
// It also keeps the model: what the table must hold once everything is sunk.
type story struct {
	rng       *rand.Rand
	users     []account
	deletePct float64
	model     map[string][]byte // user id -> last value; deleted users absent
	creates   int
	changes   int
	deletes   int
}

type account struct {
	exists bool
	points int
}

var firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie"}

// newStory sizes the user base at one user per 20 events (at least 10), so
// most users get several events.
func newStory(events int, deletePct float64, seed uint64) *story {
	return &story{
		rng:       rand.New(rand.NewPCG(seed, seed^0x5eed)),
		users:     make([]account, max(10, events/20)),
		deletePct: deletePct,
		model:     map[string][]byte{},
	}
}

// next is the next event: its key and value (nil for a delete).
func (s *story) next() (key string, value []byte) {
	id := s.rng.IntN(len(s.users))
	u := &s.users[id]
	key = "u-" + strconv.Itoa(id)
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	switch {
	case !u.exists:
		*u = account{exists: true}
		s.creates++
		value = fmt.Appendf(nil, `{"type":"user-created","user_id":%q,"name":"%s %d","email":"%s@example.com","points":0,"ts":%q}`,
			key, firstNames[id%len(firstNames)], id, key, ts)
	case s.rng.Float64()*100 < s.deletePct:
		*u = account{}
		s.deletes++
		delete(s.model, key)
		return key, nil
	default:
		delta := s.rng.IntN(120) - 20
		u.points += delta
		s.changes++
		value = fmt.Appendf(nil, `{"type":"points-changed","user_id":%q,"points":%d,"delta":%d,"ts":%q}`,
			key, u.points, delta, ts)
	}
	s.model[key] = value
	return key, value
}

// badKinds are the deliberately bad records, mixed in in this order (then
// again from the start). Each must end up in the dead-letter topic and
// leave the table untouched.
var badKinds = []struct {
	name string
	make func(key string) (k, v []byte)
}{
	{"invalid JSON (truncated)", func(key string) ([]byte, []byte) {
		return []byte(key), fmt.Appendf(nil, `{"type":"points-changed","user_id":%q,"points":`, key)
	}},
	{`"\u0000" in a string (jsonb refuses it)`, func(key string) ([]byte, []byte) {
		return []byte(key), fmt.Appendf(nil, `{"type":"user-created","user_id":%q,"name":"Mallory\u0000","points":0}`, key)
	}},
	{"a raw NUL byte", func(key string) ([]byte, []byte) {
		return []byte(key), fmt.Appendf(nil, "{\"type\":\"points-changed\",\"user_id\":%q,\"note\":\"a\x00b\"}", key)
	}},
	{"invalid UTF-8", func(key string) ([]byte, []byte) {
		return []byte(key), fmt.Appendf(nil, "{\"type\":\"user-created\",\"user_id\":%q,\"name\":\"\xff\xfe\"}", key)
	}},
	{"no key (upsert needs one)", func(key string) ([]byte, []byte) {
		return nil, fmt.Appendf(nil, `{"type":"points-changed","user_id":%q,"points":1}`, key)
	}},
}

// bad is bad record number i (0-based), for a random existing or former user.
func (s *story) bad(i int) (kind string, key, value []byte) {
	k := badKinds[i%len(badKinds)]
	key, value = k.make("u-" + strconv.Itoa(s.rng.IntN(len(s.users))))
	return k.name, key, value
}
